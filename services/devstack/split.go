package devstack

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ServiceEnv is the environment the service's own binary
// (services/<name>/cmd/<name>) needs to join this stack as a separate
// process, as production runs it: the stack's NATS with the service's own
// user, its database, the other services' addresses and the keys.
// metricsAddr, when set, is its METRICS_ADDR. syncAlways says whether the
// stack's NATS fsyncs every write (chat-handler's DURABILITY).
func ServiceEnv(i Info, service, metricsAddr string, syncAlways bool) ([]string, error) {
	if !slices.Contains(ServiceNames, service) {
		return nil, fmt.Errorf("unknown service %q; known services: %s", service, strings.Join(ServiceNames, ", "))
	}
	env := []string{"LOG_FORMAT=text"}
	set := func(k, v string) { env = append(env, k+"="+v) }
	if service == "twilio-sim" {
		set("TWILIO_SIM_ADDR", i.Addrs["twilio-sim"])
		return env, nil
	}
	set("NATS_URL", i.NATSURL)
	auth, ok := i.ServiceAuth[service]
	if !ok {
		auth = i.NATSAuth
	}
	if auth.User != "" {
		set("NATS_USER", auth.User)
		set("NATS_PASSWORD", auth.Password)
	}
	set("SWITCHBOARD_AUTH_KEYS", i.AuthKeysHex)
	if metricsAddr != "" {
		set("METRICS_ADDR", metricsAddr)
	}
	db := func(name string) { set("MONGO_URI", i.MongoURI); set("MONGO_DATABASE", i.DatabasePrefix+name) }
	switch service {
	case "config":
		set("GRPC_ADDR", i.Addrs["config"])
		db("config")
		set("SWITCHBOARD_CONFIG_SECRET_KEYS", i.SecretKeysHex)
		set("PUBLIC_BASE_URL", "http://"+i.Addrs["chat-handler"])
		set("TWILIO_BASE_URL", "http://"+i.Addrs["twilio-sim"])
	case "chat-handler":
		set("HTTP_ADDR", i.Addrs["chat-handler"])
		set("CONFIG_ADDR", i.Addrs["config"])
		set("ALLOW_HTTP_MEDIA", "true") // the emulator serves media over plain http
		set("PUBLISH_TIMEOUT", "3s")
		set("TWILIO_BASE_URL", "http://"+i.Addrs["twilio-sim"]) // reconciliation reads its history
		if !syncAlways {
			set("DURABILITY", "none")
		}
	case "distribution":
		set("GRPC_ADDR", i.Addrs["distribution"])
		db("distribution")
		set("CONFIG_ADDR", i.Addrs["config"])
	case "sessions":
		set("HTTP_ADDR", i.Addrs["sessions"])
		db("sessions")
		set("CONFIG_ADDR", i.Addrs["config"])
		set("DISTRIBUTION_ADDR", i.Addrs["distribution"])
		set("OUTBOUND_ADDR", i.Addrs["outbound-sender"])
		set("PUBLIC_URL", "http://"+i.Addrs["sessions"]+"/")
	case "workflow-runner":
		set("CONFIG_ADDR", i.Addrs["config"])
		set("DISTRIBUTION_ADDR", i.Addrs["distribution"])
		set("OUTBOUND_ADDR", i.Addrs["outbound-sender"])
	case "outbound-sender":
		set("GRPC_ADDR", i.Addrs["outbound-sender"])
		db("outbound")
		set("CONFIG_ADDR", i.Addrs["config"])
		set("TWILIO_BASE_URL", "http://"+i.Addrs["twilio-sim"])
		set("STATUS_CALLBACK_BASE_URL", "http://"+i.Addrs["chat-handler"])
	case "reporting":
		set("GRPC_ADDR", i.Addrs["reporting"])
		db("reporting")
		set("CONFIG_ADDR", i.Addrs["config"])
	}
	return env, nil
}

// WriteServiceEnv writes ServiceEnv of every service not running in this
// process to dir/<service>.env (KEY=value lines, mode 0600: it holds
// passwords and keys) and returns the files.
func WriteServiceEnv(i Info, dir string, metricsAddrs map[string]string, syncAlways bool) ([]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var files []string
	for _, s := range ServiceNames {
		if slices.Contains(i.Services, s) {
			continue
		}
		env, err := ServiceEnv(i, s, metricsAddrs[s], syncAlways)
		if err != nil {
			return nil, err
		}
		f := filepath.Join(dir, s+".env")
		if err := os.WriteFile(f, []byte(strings.Join(env, "\n")+"\n"), 0o600); err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}
