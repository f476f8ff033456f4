package externalscaler

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// TLSFiles names the PEM files of the gRPC server's TLS. ClientCAFile turns
// on mTLS: clients must present a certificate signed by one of its CAs.
type TLSFiles struct {
	CertFile, KeyFile, ClientCAFile string
}

// Enabled reports whether any TLS file is set.
func (f TLSFiles) Enabled() bool { return f.CertFile != "" || f.KeyFile != "" || f.ClientCAFile != "" }

// ServerTLS returns a TLS configuration that re-reads the files when they
// change (cert-manager rotates them in place), checked at most every few
// seconds, so that a rotation needs no restart.
func ServerTLS(f TLSFiles) (*tls.Config, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("tls: both --tls-cert-file and --tls-key-file are needed")
	}
	r := &tlsReloader{files: f}
	if _, err := r.load(time.Now()); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.load(time.Now())
		},
	}, nil
}

type tlsReloader struct {
	files TLSFiles

	mu       sync.Mutex
	cfg      *tls.Config
	checked  time.Time
	modTimes [3]time.Time
}

const tlsRecheck = 5 * time.Second

func (r *tlsReloader) load(now time.Time) (*tls.Config, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg != nil && now.Sub(r.checked) < tlsRecheck {
		return r.cfg, nil
	}
	r.checked = now
	var mods [3]time.Time
	for i, name := range []string{r.files.CertFile, r.files.KeyFile, r.files.ClientCAFile} {
		if name == "" {
			continue
		}
		if st, err := os.Stat(name); err == nil {
			mods[i] = st.ModTime()
		}
	}
	if r.cfg != nil && mods == r.modTimes {
		return r.cfg, nil
	}
	cfg, err := r.read()
	if err != nil {
		if r.cfg != nil {
			return r.cfg, nil // keep serving the old certificate while a rotation is half written
		}
		return nil, err
	}
	r.cfg, r.modTimes = cfg, mods
	return cfg, nil
}

func (r *tlsReloader) read() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(r.files.CertFile, r.files.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: loading the server certificate: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if r.files.ClientCAFile != "" {
		pem, err := os.ReadFile(r.files.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: reading the client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: no PEM certificate in the client CA file %s", r.files.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
