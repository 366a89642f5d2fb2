package bus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// Auth is how a service proves who it is to NATS, and how it checks the
// server: one of user/password, a token, an nkey seed file or a JWT
// credentials file (the decentralised-auth .creds file), plus optional TLS
// (a CA to trust, and a client certificate for mutual TLS). The zero value
// connects anonymously, which only an unsecured development server accepts.
type Auth struct {
	User     string
	Password string
	Token    string
	// CredsFile is a JWT user credentials file (nsc / NATS accounts).
	CredsFile string
	// NKeyFile is a file holding an nkey user seed (SU...).
	NKeyFile string
	// CAFile verifies the server's certificate (tls:// or a server that
	// requires TLS).
	CAFile string
	// CertFile and KeyFile are the client certificate for mutual TLS.
	CertFile string
	KeyFile  string
}

// Method names which credential a value carries, for logs ("none" when
// anonymous). It never includes a secret.
func (a Auth) Method() string {
	switch {
	case a.CredsFile != "":
		return "creds"
	case a.NKeyFile != "":
		return "nkey"
	case a.Token != "":
		return "token"
	case a.User != "":
		return "user"
	default:
		return "none"
	}
}

// Validate reports every problem at once: at most one credential, a user
// with a password, both halves of a client certificate, readable files.
func (a Auth) Validate() error {
	var errs []error
	n := 0
	for _, set := range []bool{a.User != "" || a.Password != "", a.Token != "", a.CredsFile != "", a.NKeyFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		errs = append(errs, errors.New("nats auth: set only one of NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_CREDS or NATS_NKEY"))
	}
	if (a.User == "") != (a.Password == "") {
		errs = append(errs, errors.New("nats auth: NATS_USER and NATS_PASSWORD go together"))
	}
	if (a.CertFile == "") != (a.KeyFile == "") {
		errs = append(errs, errors.New("nats tls: NATS_TLS_CERT and NATS_TLS_KEY go together"))
	}
	for _, f := range []struct{ env, path string }{
		{"NATS_CREDS", a.CredsFile}, {"NATS_NKEY", a.NKeyFile}, {"NATS_TLS_CA", a.CAFile},
		{"NATS_TLS_CERT", a.CertFile}, {"NATS_TLS_KEY", a.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.env, err))
		}
	}
	return errors.Join(errs...)
}

// options turns a into nats.Connect options.
func (a Auth) options() ([]nats.Option, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case a.CredsFile != "":
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(a.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey %s: %w", a.NKeyFile, err)
		}
		opts = append(opts, o)
	case a.Token != "":
		opts = append(opts, nats.Token(a.Token))
	case a.User != "":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	}
	if a.CAFile != "" || a.CertFile != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if a.CAFile != "" {
			pem, err := os.ReadFile(a.CAFile)
			if err != nil {
				return nil, fmt.Errorf("nats tls ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("nats tls ca %s: no PEM certificate in it", a.CAFile)
			}
			cfg.RootCAs = pool
		}
		if a.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(a.CertFile, a.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("nats tls client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, nats.Secure(cfg))
	}
	return opts, nil
}

// redact drops any user:password from a (comma-separated) NATS URL list, so
// an error or log line never carries a secret.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = url.User("redacted")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
