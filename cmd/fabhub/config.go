package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is everything fabhub reads from flags and FAB_ environment variables.
type Config struct {
	Addr         string
	DataDir      string
	DB           string // "" = SQLite in DataDir; mongodb://... = MongoDB
	Blobs        string // "" = DataDir/blobs; s3://KEY:SECRET@host:port/bucket = S3
	LogLevel     slog.Level
	PublicURL    string // how people reach the hub; https:// makes cookies Secure
	MaxBodyBytes int64
	Proxies      []string
	WebhookHosts []string // receivers webhooks may reach even at private addresses
	FedHosts     []string // hosts or CIDRs federation may reach even at private addresses
	ShutdownWait time.Duration
	MaxFileBytes int64 // one uploaded file
	MaxFiles     int   // files in one version
	LeaseTTL     time.Duration
	PprofAddr    string // "" = off; a loopback address for net/http/pprof
	// Quotas per person (site admins have none).
	DesignsPerDay, LabsPerUser, JobsPerDay int
	UploadBytesPerDay                      int64
	CreditFloor                            int64 // machine-minutes an account may go below zero
}

// parseConfig reads flags, each defaulting to its FAB_ environment variable.
func parseConfig(args []string, getenv func(string) string) (Config, error) {
	c, rest, err := parseFlags(args, getenv)
	if err == nil && len(rest) > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", rest[0])
	}
	return c, err
}

// parseFlags is parseConfig for a subcommand: it also returns the arguments after the
// flags.
func parseFlags(args []string, getenv func(string) string) (Config, []string, error) {
	fs := flag.NewFlagSet("fabhub", flag.ContinueOnError)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var c Config
	var err error
	var webhookHosts, fedHosts string
	var level, proxies, maxBody, wait, maxFile, maxFiles, leaseTTL, uploadPerDay, designsPerDay, labs, jobsPerDay, floor string
	fs.StringVar(&c.Addr, "addr", env("FAB_ADDR", ":8080"), "listen address (FAB_ADDR)")
	fs.StringVar(&c.DataDir, "data", env("FAB_DATA", "./data"), "data directory for the embedded stores (FAB_DATA)")
	fs.StringVar(&c.DB, "db", env("FAB_DB", ""), "document store: empty for SQLite in the data dir, or mongodb://... (FAB_DB)")
	fs.StringVar(&c.Blobs, "blobs", env("FAB_BLOBS", ""), "blob store: empty for blobs/ in the data dir, or s3://KEY:SECRET@host:port/bucket?tls=false (FAB_BLOBS)")
	fs.StringVar(&level, "log-level", env("FAB_LOG_LEVEL", "info"), "debug, info, warn or error (FAB_LOG_LEVEL)")
	fs.StringVar(&c.PublicURL, "public-url", env("FAB_PUBLIC_URL", ""), "the URL people use to reach the hub; https makes cookies Secure (FAB_PUBLIC_URL)")
	fs.StringVar(&maxBody, "max-body", env("FAB_MAX_BODY", "1048576"), "largest JSON request body in bytes (FAB_MAX_BODY)")
	fs.StringVar(&proxies, "trusted-proxies", env("FAB_TRUSTED_PROXIES", ""), "comma-separated proxy IPs or CIDRs whose X-Forwarded-For is believed (FAB_TRUSTED_PROXIES)")
	fs.StringVar(&maxFile, "max-file-bytes", env("FAB_MAX_FILE_BYTES", "268435456"), "largest file in a design upload, bytes (FAB_MAX_FILE_BYTES)")
	fs.StringVar(&maxFiles, "max-files", env("FAB_MAX_FILES", "200"), "most files in one design version (FAB_MAX_FILES)")
	fs.StringVar(&leaseTTL, "lease-ttl", env("FAB_LEASE_TTL", "60s"), "how long a job's lease lasts without a report from its agent (FAB_LEASE_TTL)")
	fs.StringVar(&fedHosts, "federation-allow-hosts", env("FAB_FEDERATION_ALLOW_HOSTS", ""), "comma-separated hosts, IPs or CIDRs federation may reach although private or loopback (FAB_FEDERATION_ALLOW_HOSTS)")
	fs.StringVar(&webhookHosts, "webhook-allow-hosts", env("FAB_WEBHOOK_ALLOW_HOSTS", ""), "comma-separated hosts or IPs webhooks may be sent to although private or loopback (FAB_WEBHOOK_ALLOW_HOSTS)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", env("FAB_PPROF_ADDR", ""), "serve Go profiling on this address, e.g. 127.0.0.1:6060 (FAB_PPROF_ADDR; off by default)")
	fs.StringVar(&wait, "shutdown-wait", env("FAB_SHUTDOWN_WAIT", "20s"), "how long in-flight requests may take to finish on shutdown (FAB_SHUTDOWN_WAIT)")
	fs.StringVar(&designsPerDay, "quota-designs-per-day", env("FAB_QUOTA_DESIGNS_PER_DAY", "100"), "new designs and forks one person may publish a day (FAB_QUOTA_DESIGNS_PER_DAY)")
	fs.StringVar(&uploadPerDay, "quota-upload-bytes-per-day", env("FAB_QUOTA_UPLOAD_BYTES_PER_DAY", "10737418240"), "bytes one person may upload a day (FAB_QUOTA_UPLOAD_BYTES_PER_DAY)")
	fs.StringVar(&labs, "quota-labs", env("FAB_QUOTA_LABS", "10"), "labs one person may open (FAB_QUOTA_LABS)")
	fs.StringVar(&jobsPerDay, "quota-jobs-per-day", env("FAB_QUOTA_JOBS_PER_DAY", "1000"), "jobs one person may order a day (FAB_QUOTA_JOBS_PER_DAY)")
	fs.StringVar(&floor, "credit-floor", env("FAB_CREDIT_FLOOR", "-600"), "machine-minutes an account may go below zero, at most 0 (FAB_CREDIT_FLOOR)")
	if err := fs.Parse(args); err != nil {
		return Config{}, nil, err
	}
	if c.UploadBytesPerDay, err = strconv.ParseInt(uploadPerDay, 10, 64); err != nil || c.UploadBytesPerDay < 1 {
		return Config{}, nil, fmt.Errorf("quota upload bytes per day %q: want a number of bytes", uploadPerDay)
	}
	for _, q := range []struct {
		name, value string
		n           *int
	}{{"quota designs per day", designsPerDay, &c.DesignsPerDay}, {"quota labs", labs, &c.LabsPerUser}, {"quota jobs per day", jobsPerDay, &c.JobsPerDay}} {
		if *q.n, err = strconv.Atoi(q.value); err != nil || *q.n < 1 {
			return Config{}, nil, fmt.Errorf("%s %q: want a number, at least 1", q.name, q.value)
		}
	}
	if c.CreditFloor, err = strconv.ParseInt(floor, 10, 64); err != nil || c.CreditFloor > 0 || c.CreditFloor < -1_000_000 {
		return Config{}, nil, fmt.Errorf("credit floor %q: want machine-minutes from 0 down to -1000000", floor)
	}
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		return Config{}, nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	n, err := strconv.ParseInt(maxBody, 10, 64)
	if err != nil || n < 1024 {
		return Config{}, nil, fmt.Errorf("max body %q: want a number of bytes, at least 1024", maxBody)
	}
	c.MaxBodyBytes = n
	if c.MaxFileBytes, err = strconv.ParseInt(maxFile, 10, 64); err != nil || c.MaxFileBytes < 1024 {
		return Config{}, nil, fmt.Errorf("max file bytes %q: want a number of bytes, at least 1024", maxFile)
	}
	if c.MaxFiles, err = strconv.Atoi(maxFiles); err != nil || c.MaxFiles < 1 || c.MaxFiles > 10000 {
		return Config{}, nil, fmt.Errorf("max files %q: want a number from 1 to 10000", maxFiles)
	}
	if c.LeaseTTL, err = time.ParseDuration(leaseTTL); err != nil || c.LeaseTTL < time.Second {
		return Config{}, nil, fmt.Errorf("lease ttl %q: want a duration of at least 1s, such as 60s", leaseTTL)
	}
	if c.ShutdownWait, err = time.ParseDuration(wait); err != nil {
		return Config{}, nil, fmt.Errorf("shutdown wait %q: want a duration such as 20s", wait)
	}
	for _, p := range strings.Split(proxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.Proxies = append(c.Proxies, p)
		}
	}
	for _, h := range strings.Split(webhookHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.WebhookHosts = append(c.WebhookHosts, h)
		}
	}
	for _, h := range strings.Split(fedHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.FedHosts = append(c.FedHosts, h)
		}
	}
	switch {
	case c.DB == "", strings.HasPrefix(c.DB, "mongodb://"), strings.HasPrefix(c.DB, "mongodb+srv://"):
	default:
		return Config{}, nil, fmt.Errorf("db %q: want empty (SQLite) or a mongodb:// URI", redact(c.DB))
	}
	if c.Blobs != "" && !strings.HasPrefix(c.Blobs, "s3://") {
		return Config{}, nil, fmt.Errorf("blobs %q: want empty (local) or an s3:// URL", redact(c.Blobs))
	}
	return c, fs.Args(), nil
}

// redact hides the password in a URL, for logs and error messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// LogValue is how the config appears in the log: credentials masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("data", c.DataDir),
		slog.String("db", orDefault(redact(c.DB), "sqlite")),
		slog.String("blobs", orDefault(redact(c.Blobs), "local")),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("public_url", c.PublicURL),
	)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func newLogger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
