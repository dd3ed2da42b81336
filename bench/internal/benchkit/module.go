package benchkit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// ModuleRoot finds the tracectl checkout the harness runs in: the nearest
// directory at or above the working directory whose go.mod is this module.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/tracectl/tracectl\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the tracectl module (go.mod of github.com/tracectl/tracectl not found above the working directory)")
		}
		dir = parent
	}
}
