package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/tracectl/tracectl/internal/storage"
)

const envPrefix = "TRACECTL"

// config is the effective configuration of one run: one local viper
// instance (never the global one) over the config file and environment, and
// a record of where each flag's value came from.
type config struct {
	v        *viper.Viper
	file     string // config file read, "" if none
	sources  map[string]string
	values   map[string]string
	g        *globalOptions
	tempoURL string // bucket URL built from Tempo-shaped storage keys
}

// envName is the environment variable for a flag: TRACECTL_ + upper case,
// dashes to underscores.
func envName(flag string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// loadConfig reads the config file and environment and copies values into
// every flag of cmd the user did not set: flag > TRACECTL_* > file > default.
func loadConfig(cmd *cobra.Command, g *globalOptions) (*config, error) {
	v := viper.New()
	c := &config{v: v, sources: map[string]string{}, values: map[string]string{}, g: g}

	file := g.ConfigFile
	explicit := cmd.Flags().Changed("config")
	if !explicit {
		if env := os.Getenv(envName("config")); env != "" {
			file, explicit = env, true
		}
	}
	if file == "" {
		file = defaultConfigFile()
	}
	if file != "" {
		if _, err := os.Stat(file); err == nil {
			v.SetConfigFile(file)
			v.SetConfigType("yaml")
			if err := v.ReadInConfig(); err != nil {
				return nil, fmt.Errorf("reading config file %s: %v; fix the YAML or pass --config with another file", file, err)
			}
			c.file = file
		} else if explicit {
			return nil, fmt.Errorf("config file %s: %v; create it or point --config/TRACECTL_CONFIG at an existing file", file, errors.Unwrap(err))
		}
	}

	var firstErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if firstErr != nil || f.Name == "help" {
			return
		}
		src := "default"
		switch {
		case f.Changed:
			src = "flag --" + f.Name
		case os.Getenv(envName(f.Name)) != "":
			if err := f.Value.Set(os.Getenv(envName(f.Name))); err != nil {
				firstErr = fmt.Errorf("environment %s=%q: %v", envName(f.Name), os.Getenv(envName(f.Name)), err)
				return
			}
			src = "env " + envName(f.Name)
		case f.Name != "config":
			if val, ok := c.fileValue(f.Name); ok {
				if err := setFromConfig(f, val); err != nil {
					firstErr = fmt.Errorf("config file %s, key %q: %v", c.file, f.Name, err)
					return
				}
				src = "file " + c.file
			}
		}
		c.sources[f.Name] = src
	})
	if firstErr != nil {
		return nil, firstErr
	}
	if c.file != "" && g.ConfigFile == "" {
		g.ConfigFile = c.file
	}
	url, err := tempoStorageURL(v)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %v", c.file, err)
	}
	c.tempoURL = url
	return c, nil
}

// fileValue looks a flag up in the config file, under its own name with
// dashes or underscores. Maps (like Tempo's storage section) are not flag
// values and are skipped here.
// origin says where the value of flag name came from, for messages about
// a bad value: "flag --tenant", "env TRACECTL_TENANT", "config file F,
// key tenant" or "default".
func (c *config) origin(name string) string {
	src := c.sources[name]
	if file, ok := strings.CutPrefix(src, "file "); ok {
		return "config file " + file + ", key " + name
	}
	if src == "" {
		return "flag --" + name
	}
	return src
}

func (c *config) fileValue(name string) (any, bool) {
	for _, k := range []string{name, strings.ReplaceAll(name, "-", "_")} {
		if c.v.InConfig(k) {
			val := c.v.Get(k)
			if _, isMap := val.(map[string]any); isMap {
				return nil, false
			}
			return val, true
		}
	}
	return nil, false
}

func setFromConfig(f *pflag.Flag, val any) error {
	switch x := val.(type) {
	case []any:
		for _, e := range x {
			if err := f.Value.Set(fmt.Sprint(e)); err != nil {
				return err
			}
		}
		return nil
	case nil:
		return nil
	}
	return f.Value.Set(fmt.Sprint(val))
}

func defaultConfigFile() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "tracectl", "config.yaml")
}

// tempoStorageURL builds a bucket URL from Tempo's storage section
// (storage.trace.backend and its backend block), so a Tempo user's config
// works as written. It returns "" when there is no such section.
func tempoStorageURL(v *viper.Viper) (string, error) {
	backend := v.GetString("storage.trace.backend")
	if backend == "" {
		return "", nil
	}
	get := func(k string) string { return v.GetString("storage.trace." + backend + "." + k) }
	switch backend {
	case "local":
		p := get("path")
		if p == "" {
			return "", errors.New("storage.trace.backend is local but storage.trace.local.path is empty")
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		return "file://" + filepath.ToSlash(abs) + "?create_dir=true", nil
	case "s3":
		bucket := get("bucket")
		if bucket == "" {
			return "", errors.New("storage.trace.backend is s3 but storage.trace.s3.bucket is empty")
		}
		q := url.Values{}
		if r := get("region"); r != "" {
			q.Set("region", r)
		}
		if ep := get("endpoint"); ep != "" && !isAWSEndpoint(ep) {
			scheme := "https://"
			if v.GetBool("storage.trace.s3.insecure") {
				scheme = "http://"
			}
			if !strings.Contains(ep, "://") {
				ep = scheme + ep
			}
			q.Set("endpoint", ep)
		}
		if v.GetBool("storage.trace.s3.forcepathstyle") {
			q.Set("use_path_style", "true")
		}
		if p := get("prefix"); p != "" {
			q.Set("prefix", strings.TrimSuffix(p, "/")+"/")
		}
		return "s3://" + bucket + encodeQuery(q), nil
	case "gcs":
		bucket := get("bucket_name")
		if bucket == "" {
			return "", errors.New("storage.trace.backend is gcs but storage.trace.gcs.bucket_name is empty")
		}
		q := url.Values{}
		if p := get("prefix"); p != "" {
			q.Set("prefix", strings.TrimSuffix(p, "/")+"/")
		}
		return "gs://" + bucket + encodeQuery(q), nil
	case "azure":
		container := get("container_name")
		if container == "" {
			return "", errors.New("storage.trace.backend is azure but storage.trace.azure.container_name is empty")
		}
		q := url.Values{}
		if s := get("endpoint_suffix"); s != "" {
			q.Set("domain", s)
		}
		if p := get("prefix"); p != "" {
			q.Set("prefix", strings.TrimSuffix(p, "/")+"/")
		}
		return "azblob://" + container + encodeQuery(q), nil
	}
	return "", fmt.Errorf("storage.trace.backend %q is not supported; use local, s3, gcs or azure", backend)
}

// isAWSEndpoint reports whether ep is AWS's own S3 endpoint; the SDK picks
// the right regional endpoint itself, so tracectl does not override it.
func isAWSEndpoint(ep string) bool {
	host := strings.TrimPrefix(strings.TrimPrefix(ep, "https://"), "http://")
	return host == "s3.amazonaws.com" || (strings.HasPrefix(host, "s3.") && strings.HasSuffix(host, ".amazonaws.com"))
}

func encodeQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// storageURL is the bucket URL to open: --storage/TRACECTL_STORAGE/the
// config's storage string, else Tempo's storage section, else the embedded
// default directory.
func (c *config) storageURL() (string, error) {
	if c.g.Storage != "" {
		return c.g.Storage, nil
	}
	if c.tempoURL != "" {
		return c.tempoURL, nil
	}
	return storage.DefaultURL, nil
}

func (c *config) storageSource() string {
	switch {
	case c.g.Storage != "":
		return c.sources["storage"]
	case c.tempoURL != "":
		return "file " + c.file + " (storage.trace)"
	}
	return "default"
}

// tempoSecrets maps Tempo's credential keys to the environment variables the
// cloud SDKs read.
var tempoSecrets = []struct{ key, env string }{
	{"storage.trace.s3.access_key", "AWS_ACCESS_KEY_ID"},
	{"storage.trace.s3.secret_key", "AWS_SECRET_ACCESS_KEY"},
	{"storage.trace.s3.session_token", "AWS_SESSION_TOKEN"},
	{"storage.trace.azure.storage_account_name", "AZURE_STORAGE_ACCOUNT"},
	{"storage.trace.azure.storage_account_key", "AZURE_STORAGE_KEY"},
	{"storage.trace.gcs.service_account_path", "GOOGLE_APPLICATION_CREDENTIALS"},
}

// applyStorageCredentials hands credentials from the config file to the
// cloud SDKs through their environment variables. Variables already set in
// the environment win, as the environment beats the config file everywhere.
func (c *config) applyStorageCredentials() error {
	if c.tempoURL == "" || c.g.Storage != "" {
		return nil
	}
	for _, s := range tempoSecrets {
		val := c.v.GetString(s.key)
		if val == "" || os.Getenv(s.env) != "" {
			continue
		}
		if err := os.Setenv(s.env, val); err != nil {
			return err
		}
	}
	return nil
}

func isSecretName(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"secret", "password", "token", "api_key", "api-key", "account_key", "access_key"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

const masked = "********"

// configEntry is one line of `tracectl config show`.
type configEntry struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

// entries lists the effective configuration with secrets masked.
func (c *config) entries(cmd *cobra.Command) []configEntry {
	var out []configEntry
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" {
			return
		}
		val := f.Value.String()
		if f.Name == "storage" {
			u, _ := c.storageURL()
			out = append(out, configEntry{"storage", storage.Redact(u), c.storageSource()})
			return
		}
		if isSecretName(f.Name) && val != "" {
			val = masked
		}
		out = append(out, configEntry{f.Name, val, c.sources[f.Name]})
	})
	// Tempo-shaped keys from the file, shown as read, secrets masked.
	if c.file != "" {
		keys := c.v.AllKeys()
		sort.Strings(keys)
		for _, k := range keys {
			if !strings.HasPrefix(k, "storage.") {
				continue
			}
			val := fmt.Sprint(c.v.Get(k))
			if isSecretName(k) && val != "" {
				val = masked
			}
			out = append(out, configEntry{k, val, "file " + c.file})
		}
	}
	for _, s := range tempoSecrets {
		if os.Getenv(s.env) != "" {
			out = append(out, configEntry{s.env, masked, "env " + s.env})
		}
	}
	return out
}

func newConfigCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the effective configuration",
		Args:  cobra.NoArgs,
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration and where each value came from",
		Long: `Print every setting with its effective value and its source: a flag, a
TRACECTL_* environment variable, the config file, or the default.
Secrets (keys, passwords, tokens) are masked.

Output formats (-o): table (default), json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConfigShow(g, g.cfg.entries(cmd))
		},
	}
	cmd.AddCommand(show)
	return cmd
}

func runConfigShow(g *globalOptions, entries []configEntry) error {
	switch g.Output {
	case "", "table":
		tw := tabwriter.NewWriter(g.io.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Key, e.Value, e.Source)
		}
		return tw.Flush()
	case "json":
		enc := json.NewEncoder(g.io.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	return usageError("config show: unknown output format %q; use table or json", g.Output)
}
