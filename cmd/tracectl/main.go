// Command tracectl is a toolkit for distributed-trace storage in Tempo's
// vParquet4 block format on object storage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], defaultStreams())
	stop()
	os.Exit(code)
}
