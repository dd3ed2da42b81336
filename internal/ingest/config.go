package ingest

import (
	"crypto/tls"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// DefaultMaxRequestBytes bounds a request body (and its decompressed size),
// and a gRPC message, when Config.MaxRequestBytes is zero. Tempo's
// distributor allows the same.
const DefaultMaxRequestBytes = 20 << 20

// Default listen addresses, the protocols' registered ports.
const (
	DefaultOTLPGRPCEndpoint            = "0.0.0.0:4317"
	DefaultOTLPHTTPEndpoint            = "0.0.0.0:4318"
	DefaultJaegerGRPCEndpoint          = "0.0.0.0:14250"
	DefaultJaegerThriftHTTPEndpoint    = "0.0.0.0:14268"
	DefaultJaegerThriftCompactEndpoint = "0.0.0.0:6831"
	DefaultJaegerThriftBinaryEndpoint  = "0.0.0.0:6832"
	DefaultZipkinEndpoint              = "0.0.0.0:9411"
)

// Timeouts of every HTTP listener. The read timeout covers a whole body of
// DefaultMaxRequestBytes from a slow client; the write timeout covers the
// Consumer's wait for the WAL.
const (
	httpReadHeaderTimeout = 10 * time.Second
	httpReadTimeout       = time.Minute
	httpWriteTimeout      = 2 * time.Minute
	httpIdleTimeout       = 2 * time.Minute
)

// TLSConfig names a PEM certificate chain and its private key. Both are
// read when the receiver is constructed.
type TLSConfig struct {
	CertFile string `yaml:"cert_file" mapstructure:"cert_file"`
	KeyFile  string `yaml:"key_file" mapstructure:"key_file"`
}

func (c *TLSConfig) load() (*tls.Config, error) {
	if c == nil {
		return nil, nil
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, fmt.Errorf("tls needs both cert_file and key_file (got cert_file=%q, key_file=%q)", c.CertFile, c.KeyFile)
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading TLS certificate %s and key %s: %w", c.CertFile, c.KeyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Config configures one TCP receiver (HTTP or gRPC).
type Config struct {
	// Endpoint is the listen address, host:port; "127.0.0.1:0" picks a free
	// port (see Receiver.Addr).
	Endpoint string `yaml:"endpoint" mapstructure:"endpoint"`
	// TLS, when set, serves TLS only.
	TLS *TLSConfig `yaml:"tls" mapstructure:"tls"`
	// MaxRequestBytes bounds a request body, its decompressed size, and a
	// gRPC message; 0 means DefaultMaxRequestBytes.
	MaxRequestBytes int64 `yaml:"max_request_bytes" mapstructure:"max_request_bytes"`
	// MultiTenancy takes the tenant from X-Scope-OrgID and refuses requests
	// without one; off, every request belongs to DefaultTenant.
	MultiTenancy bool `yaml:"multitenancy_enabled" mapstructure:"multitenancy_enabled"`
}

func (c Config) maxBytes() int64 {
	if c.MaxRequestBytes <= 0 {
		return DefaultMaxRequestBytes
	}
	return c.MaxRequestBytes
}

// ZipkinConfig configures the Zipkin receiver.
type ZipkinConfig struct {
	Config `yaml:",inline" mapstructure:",squash"`
	// ParseStringTags turns string tags that look like numbers or booleans
	// into typed attributes, as the Collector's option of the same name.
	ParseStringTags bool `yaml:"parse_string_tags" mapstructure:"parse_string_tags"`
}

// UDPConfig configures a Jaeger agent (thrift over UDP) receiver. UDP
// carries no headers, so every packet belongs to DefaultTenant whatever the
// multi-tenancy setting, and there is no TLS.
type UDPConfig struct {
	Endpoint string `yaml:"endpoint" mapstructure:"endpoint"`
	// MaxPacketSize is the largest datagram accepted; 0 means 65000, the
	// Jaeger clients' default. Larger packets are dropped and counted.
	MaxPacketSize int `yaml:"max_packet_size" mapstructure:"max_packet_size"`
	// QueueSize is how many packets may wait for a worker; 0 means 1000.
	// Packets arriving to a full queue are dropped and counted.
	QueueSize int `yaml:"queue_size" mapstructure:"queue_size"`
	// Workers decode and consume packets concurrently; 0 means 10.
	Workers int `yaml:"workers" mapstructure:"workers"`
}

func (c UDPConfig) withDefaults() UDPConfig {
	if c.MaxPacketSize <= 0 {
		c.MaxPacketSize = 65000
	}
	if c.MaxPacketSize > 65535 {
		c.MaxPacketSize = 65535
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1000
	}
	if c.Workers <= 0 {
		c.Workers = 10
	}
	return c
}

// ReceiversConfig says which receivers run; nil means off. It is what
// ParseReceiversConfig makes of a Tempo/Collector `receivers:` section.
type ReceiversConfig struct {
	OTLPGRPC            *Config
	OTLPHTTP            *Config
	JaegerGRPC          *Config
	JaegerThriftHTTP    *Config
	JaegerThriftCompact *UDPConfig
	JaegerThriftBinary  *UDPConfig
	Zipkin              *ZipkinConfig

	// MultiTenancy, when true, turns multi-tenancy on in every TCP receiver
	// NewSet builds (it is Tempo's top-level multitenancy_enabled, not part
	// of the receivers section).
	MultiTenancy bool

	// Ignored lists the dotted keys that were accepted for compatibility
	// with Collector configurations but have no effect here; log them.
	Ignored []string
}

// ParseReceiversConfig reads the `receivers:` section of a Tempo
// (distributor.receivers) or OpenTelemetry Collector configuration, as
// decoded from YAML into maps. It accepts either the section's value
// ({otlp: …, jaeger: …, zipkin: …}) or a map holding it under "receivers".
//
// A protocol that is present is enabled, at its endpoint or at its default
// one when the endpoint (or the whole value) is absent. Each TCP protocol
// accepts tls: {cert_file, key_file}. Collector keys without meaning here
// (cors, keepalive, include_metadata, …) are listed in Ignored; receivers or
// protocols tracectl cannot serve, and settings whose silent omission would
// weaken security or break clients (tls.client_ca_file, traces_url_path),
// are errors.
func ParseReceiversConfig(m map[string]any) (ReceiversConfig, error) {
	var rc ReceiversConfig
	if inner, ok := m["receivers"]; ok && len(m) == 1 {
		mm, err := asMap(inner, "receivers")
		if err != nil {
			return rc, err
		}
		m = mm
	}
	p := &parser{}
	for _, name := range sortedKeys(m) {
		v := m[name]
		switch name {
		case "otlp":
			protos, err := p.protocols(v, "otlp")
			if err != nil {
				return rc, err
			}
			for _, proto := range sortedKeys(protos) {
				path := "otlp.protocols." + proto
				var err error
				switch proto {
				case "grpc":
					rc.OTLPGRPC, err = p.tcp(protos[proto], path, DefaultOTLPGRPCEndpoint, true, nil)
				case "http":
					rc.OTLPHTTP, err = p.tcp(protos[proto], path, DefaultOTLPHTTPEndpoint, false, map[string]func(any) error{
						"traces_url_path": func(v any) error {
							if s, _ := v.(string); s != "/v1/traces" && s != "v1/traces" {
								return fmt.Errorf("%s.traces_url_path %v: only /v1/traces is served", path, v)
							}
							return nil
						},
					})
				default:
					err = fmt.Errorf("%s: unknown OTLP protocol; use grpc or http", path)
				}
				if err != nil {
					return rc, err
				}
			}
		case "jaeger":
			protos, err := p.protocols(v, "jaeger")
			if err != nil {
				return rc, err
			}
			for _, proto := range sortedKeys(protos) {
				path := "jaeger.protocols." + proto
				var err error
				switch proto {
				case "grpc":
					rc.JaegerGRPC, err = p.tcp(protos[proto], path, DefaultJaegerGRPCEndpoint, true, nil)
				case "thrift_http":
					rc.JaegerThriftHTTP, err = p.tcp(protos[proto], path, DefaultJaegerThriftHTTPEndpoint, false, nil)
				case "thrift_compact":
					rc.JaegerThriftCompact, err = p.udp(protos[proto], path, DefaultJaegerThriftCompactEndpoint)
				case "thrift_binary":
					rc.JaegerThriftBinary, err = p.udp(protos[proto], path, DefaultJaegerThriftBinaryEndpoint)
				default:
					err = fmt.Errorf("%s: unknown Jaeger protocol; use grpc, thrift_http, thrift_compact or thrift_binary", path)
				}
				if err != nil {
					return rc, err
				}
			}
		case "zipkin":
			var parseTags bool
			c, err := p.tcp(v, "zipkin", DefaultZipkinEndpoint, false, map[string]func(any) error{
				"parse_string_tags": func(v any) error {
					b, ok := v.(bool)
					if !ok {
						return fmt.Errorf("zipkin.parse_string_tags: want true or false, got %v", v)
					}
					parseTags = b
					return nil
				},
			})
			if err != nil {
				return rc, err
			}
			rc.Zipkin = &ZipkinConfig{Config: *c, ParseStringTags: parseTags}
		default:
			return rc, fmt.Errorf("receivers.%s: not supported by tracectl; use otlp, jaeger or zipkin", name)
		}
	}
	rc.Ignored = p.ignored
	return rc, nil
}

type parser struct{ ignored []string }

func (p *parser) protocols(v any, path string) (map[string]any, error) {
	m, err := asMap(v, path)
	if err != nil {
		return nil, err
	}
	var protos map[string]any
	for _, k := range sortedKeys(m) {
		if k == "protocols" {
			if protos, err = asMap(m[k], path+".protocols"); err != nil {
				return nil, err
			}
			continue
		}
		p.ignored = append(p.ignored, path+"."+k)
	}
	if len(protos) == 0 {
		return nil, fmt.Errorf("%s.protocols: name at least one protocol", path)
	}
	return protos, nil
}

// tcp parses an HTTP or gRPC server section; extra handles keys specific to
// the receiver.
func (p *parser) tcp(v any, path, defEndpoint string, grpc bool, extra map[string]func(any) error) (*Config, error) {
	m, err := asMap(v, path)
	if err != nil {
		return nil, err
	}
	c := &Config{Endpoint: defEndpoint}
	for _, k := range sortedKeys(m) {
		val := m[k]
		switch {
		case k == "endpoint":
			if c.Endpoint, err = asEndpoint(val, path+".endpoint", defEndpoint); err != nil {
				return nil, err
			}
		case k == "tls":
			if c.TLS, err = p.tls(val, path+".tls"); err != nil {
				return nil, err
			}
		case k == "max_recv_msg_size_mib" && grpc:
			n, err := asInt(val, path+"."+k)
			if err != nil {
				return nil, err
			}
			if n > 0 {
				c.MaxRequestBytes = n << 20
			}
		case k == "max_request_body_size" && !grpc:
			n, err := asInt(val, path+"."+k)
			if err != nil {
				return nil, err
			}
			c.MaxRequestBytes = n
		case extra[k] != nil:
			if err := extra[k](val); err != nil {
				return nil, err
			}
		default:
			p.ignored = append(p.ignored, path+"."+k)
		}
	}
	return c, nil
}

func (p *parser) udp(v any, path, defEndpoint string) (*UDPConfig, error) {
	m, err := asMap(v, path)
	if err != nil {
		return nil, err
	}
	c := &UDPConfig{Endpoint: defEndpoint}
	for _, k := range sortedKeys(m) {
		val := m[k]
		var n int64
		switch k {
		case "endpoint":
			if c.Endpoint, err = asEndpoint(val, path+".endpoint", defEndpoint); err != nil {
				return nil, err
			}
			continue
		case "tls":
			return nil, fmt.Errorf("%s.tls: UDP receivers cannot serve TLS; remove it or use thrift_http or grpc", path)
		case "max_packet_size", "queue_size", "workers":
			if n, err = asInt(val, path+"."+k); err != nil {
				return nil, err
			}
			if n > math.MaxInt32 {
				return nil, fmt.Errorf("%s.%s: %d is too large", path, k, n)
			}
		default:
			p.ignored = append(p.ignored, path+"."+k)
			continue
		}
		switch k {
		case "max_packet_size":
			c.MaxPacketSize = int(n)
		case "queue_size":
			c.QueueSize = int(n)
		case "workers":
			c.Workers = int(n)
		}
	}
	return c, nil
}

func (p *parser) tls(v any, path string) (*TLSConfig, error) {
	m, err := asMap(v, path)
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, nil
	}
	c := &TLSConfig{}
	for _, k := range sortedKeys(m) {
		switch k {
		case "cert_file", "key_file":
			s, ok := m[k].(string)
			if !ok {
				return nil, fmt.Errorf("%s.%s: want a file name, got %v", path, k, m[k])
			}
			if k == "cert_file" {
				c.CertFile = s
			} else {
				c.KeyFile = s
			}
		case "client_ca_file", "client_ca_file_reload", "ca_file", "ca_pem", "cert_pem", "key_pem", "insecure_skip_verify":
			return nil, fmt.Errorf("%s.%s: not supported; tracectl serves TLS from cert_file and key_file only (no client certificates)", path, k)
		default:
			p.ignored = append(p.ignored, path+"."+k)
		}
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, fmt.Errorf("%s: set both cert_file and key_file", path)
	}
	return c, nil
}

// asMap accepts what YAML and viper decoders produce; nil (a key with no
// value) is an empty map.
func asMap(v any, path string) (map[string]any, error) {
	switch m := v.(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		return m, nil
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, val := range m {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%s: key %v is not a string", path, k)
			}
			out[ks] = val
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: want a mapping, got %T (%v)", path, v, v)
}

func asEndpoint(v any, path, def string) (string, error) {
	if v == nil {
		return def, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: want host:port, got %v", path, v)
	}
	if s == "" {
		return def, nil
	}
	if !strings.Contains(s, ":") {
		return "", fmt.Errorf("%s: %q has no port; write host:port such as %s", path, s, def)
	}
	return s, nil
}

func asInt(v any, path string) (int64, error) {
	switch n := v.(type) {
	case int:
		return int64(n), nil
	case int64:
		return n, nil
	case int32:
		return int64(n), nil
	case uint64:
		if n > math.MaxInt64 {
			break
		}
		return int64(n), nil
	case float64:
		if n == math.Trunc(n) && n >= 0 && n < math.MaxInt64 {
			return int64(n), nil
		}
	}
	return 0, fmt.Errorf("%s: want a whole number, got %v", path, v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
