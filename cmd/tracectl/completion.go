package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracectl/tracectl/internal/tenant"
)

// completionTimeout bounds the bucket listing done for shell completion, so
// a slow or unreachable bucket never hangs the user's shell.
const completionTimeout = 3 * time.Second

// completionBucketDirs lists the "directories" under prefix in the
// configured bucket, for dynamic completion. Errors mean no suggestions.
func (g *globalOptions) completionBucketDirs(cmd *cobra.Command, prefix string) []string {
	if g.cfg == nil {
		cfg, err := loadConfig(cmd, g)
		if err != nil {
			return nil
		}
		g.cfg = cfg
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	b, err := g.openBucket(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for o, err := range b.List(ctx, prefix, "/") {
		if err != nil {
			break
		}
		if o.IsDir {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(o.Key, prefix), "/"))
		}
	}
	return out
}

// completeTenants suggests the tenants found in the configured bucket.
func (g *globalOptions) completeTenants(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	var out []string
	for _, d := range g.completionBucketDirs(cmd, "") {
		if tenant.Validate(d) == nil && strings.HasPrefix(d, toComplete) {
			out = append(out, d)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeBlockIDs suggests block IDs of the configured tenant.
func (g *globalOptions) completeBlockIDs(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	t := g.Tenant
	if tenant.Validate(t) != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, d := range g.completionBucketDirs(cmd, t+"/") {
		if strings.HasPrefix(d, toComplete) && len(d) == 36 {
			out = append(out, d)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
