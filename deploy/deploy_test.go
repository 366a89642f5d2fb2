package deploy_test

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Secrets the services read, created outside the manifests (by hand or by
// components/external-secrets), with the keys they must hold.
var externalSecrets = map[string][]string{
	"switchboard-auth":           {"keys"},
	"switchboard-config-secrets": {"keys"},
	"switchboard-mongo":          {"uri"},
	"switchboard-nats":           services,
	"switchboard-tls":            {"tls.crt", "tls.key"},
}

func TestEveryBuild(t *testing.T) {
	lib := mainrunReads(t)
	for _, b := range builds(t) {
		t.Run(b.Name, func(t *testing.T) {
			checkNoSecrets(t, b)
			checkPods(t, b)
			checkServices(t, b)
			checkEnv(t, b, lib)
			checkDisruption(t, b)
			checkNATS(t, b)
			checkFlows(t, b)
		})
	}
}

// Secrets never sit in the manifests.
func checkNoSecrets(t *testing.T, b *Build) {
	for _, o := range b.Objects {
		if o.Kind == "Secret" {
			t.Errorf("Secret %s is in the manifests; secrets come from the cluster", o.Name)
		}
	}
}

// Every container has probes, requests and limits, and runs hardened.
func checkPods(t *testing.T, b *Build) {
	for name, pt := range podTemplates(b) {
		ps := pt.Spec
		if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken is not false", name)
		}
		psc := ps.SecurityContext
		if psc == nil {
			psc = &corev1.PodSecurityContext{}
		}
		for _, c := range ps.Containers {
			where := name + "/" + c.Name
			if c.ReadinessProbe == nil || c.LivenessProbe == nil {
				t.Errorf("%s: readiness and liveness probes required", where)
			}
			for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.Resources.Requests[res]; !ok {
					t.Errorf("%s: no %s request", where, res)
				}
				if _, ok := c.Resources.Limits[res]; !ok {
					t.Errorf("%s: no %s limit", where, res)
				}
			}
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s: no securityContext", where)
				continue
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation must be false", where)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem must be true", where)
			}
			if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: capabilities must drop ALL and add none", where)
			}
			nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
			if !nonRoot {
				t.Errorf("%s: runAsNonRoot must be true", where)
			}
			seccomp := sc.SeccompProfile
			if seccomp == nil {
				seccomp = psc.SeccompProfile
			}
			if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: seccompProfile must be RuntimeDefault", where)
			}
		}
	}
}

// containerPort finds a container port of the pod template by number or name.
func containerPort(pt *corev1.PodTemplateSpec, port string) bool {
	for _, c := range pt.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
				return true
			}
		}
	}
	return false
}

// Every Service selects a pod template, on a port the pods have.
func checkServices(t *testing.T, b *Build) {
	pts := podTemplates(b)
	for _, s := range All[corev1.Service](b) {
		sel := labels.SelectorFromSet(s.Spec.Selector)
		if len(s.Spec.Selector) == 0 {
			t.Errorf("Service %s has no selector", s.Name)
			continue
		}
		var matched []*corev1.PodTemplateSpec
		for _, pt := range pts {
			if sel.Matches(labels.Set(pt.Labels)) {
				matched = append(matched, pt)
			}
		}
		if len(matched) == 0 {
			t.Errorf("Service %s selects no pod template (%v)", s.Name, s.Spec.Selector)
			continue
		}
		for _, p := range s.Spec.Ports {
			if !containerPort(matched[0], p.TargetPort.String()) {
				t.Errorf("Service %s port %s: target port %s is not a container port", s.Name, p.Name, p.TargetPort.String())
			}
		}
	}
	for _, sm := range All[ServiceMonitor](b) {
		sel, err := metav1LabelSelector(&sm.Spec.Selector)
		if err != nil {
			t.Errorf("ServiceMonitor %s: %v", sm.Name, err)
			continue
		}
		matched := 0
		for _, s := range All[corev1.Service](b) {
			if !sel.Matches(labels.Set(s.Labels)) {
				continue
			}
			matched++
			for _, ep := range sm.Spec.Endpoints {
				if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
					t.Errorf("ServiceMonitor %s scrapes port %q, which Service %s does not have", sm.Name, ep.Port, s.Name)
				}
			}
		}
		// The collector's is there for when components/otel-collector is.
		if _, deployed := podTemplates(b)["Deployment/"+sm.Name]; matched == 0 && (deployed || sm.Name == "nats") {
			t.Errorf("ServiceMonitor %s selects no Service", sm.Name)
		}
	}
	for _, ing := range All[networkingv1.Ingress](b) {
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				svc := Get[corev1.Service](b, p.Backend.Service.Name)
				if svc == nil {
					t.Errorf("Ingress %s routes %s to Service %s, which does not exist", ing.Name, p.Path, p.Backend.Service.Name)
					continue
				}
				if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
					return sp.Name == p.Backend.Service.Port.Name || (sp.Port == p.Backend.Service.Port.Number && sp.Port != 0)
				}) {
					t.Errorf("Ingress %s routes %s to a port Service %s does not have", ing.Name, p.Path, svc.Name)
				}
			}
		}
	}
}

// checkEnv: every variable a service's Deployment sets is one its main.go
// reads; every ConfigMap key exists; every Secret is a documented one with
// a documented key; the service names itself to NATS; addresses name
// Services with that port.
func checkEnv(t *testing.T, b *Build, lib map[string]map[string]bool) {
	seen := map[string]bool{}
	for _, d := range All[appsv1.Deployment](b) {
		c := serviceContainer(d)
		if c == nil {
			continue
		}
		svc := strings.TrimPrefix(c.Image, "ko://github.com/switchboard-cc/switchboard/services/")
		svc, _, _ = strings.Cut(svc, "/")
		if svc != d.Name || c.Image != "ko://github.com/switchboard-cc/switchboard/services/"+svc+"/cmd/"+svc {
			t.Errorf("Deployment %s runs image %s, want its own service's", d.Name, c.Image)
			continue
		}
		seen[svc] = true
		reads := serviceReads(t, svc, lib)
		// What main.go would otherwise default to 127.0.0.1 or localhost:
		// the addresses of the other services, its own listen address, the
		// broker and the database. HEALTH_ADDR and METRICS_ADDR (set by
		// components/service-monitor) are off unless set.
		for v := range reads {
			required := v == "NATS_URL" || v == "MONGO_URI" || (strings.HasSuffix(v, "_ADDR") && v != "HEALTH_ADDR" && v != "METRICS_ADDR")
			if required && !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == v }) {
				t.Errorf("Deployment %s does not set %s, which services/%s/cmd/%s/main.go reads (its default is for one machine)", d.Name, v, svc, svc)
			}
		}
		for _, e := range c.Env {
			if !reads[e.Name] && !runtimeVars[e.Name] {
				t.Errorf("Deployment %s sets %s, which services/%s/cmd/%s/main.go never reads", d.Name, e.Name, svc, svc)
			}
			if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				if _, ok := configMapValue(b, e.ValueFrom.ConfigMapKeyRef); !ok {
					t.Errorf("Deployment %s: %s reads ConfigMap %s key %s, which does not exist", d.Name, e.Name, e.ValueFrom.ConfigMapKeyRef.Name, e.ValueFrom.ConfigMapKeyRef.Key)
				}
			}
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				checkSecretRef(t, "Deployment "+d.Name, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
			}
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Projected == nil {
				continue
			}
			for _, src := range v.Projected.Sources {
				if src.Secret != nil {
					for _, it := range src.Secret.Items {
						checkSecretRef(t, "Deployment "+d.Name, src.Secret.Name, it.Key)
					}
				}
			}
		}
		if user, _ := envValue(b, c, "NATS_USER"); user != svc {
			t.Errorf("Deployment %s: NATS_USER = %q, want %q (its user in switchboard-users.conf)", d.Name, user, svc)
		}
		if !slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
			return v.Projected != nil && slices.ContainsFunc(v.Projected.Sources, func(p corev1.VolumeProjection) bool {
				return p.Secret != nil && p.Secret.Name == "switchboard-nats" && len(p.Secret.Items) == 1 && p.Secret.Items[0].Key == svc
			})
		}) {
			t.Errorf("Deployment %s does not mount its own NATS password (switchboard-nats key %s)", d.Name, svc)
		}
		for _, e := range c.Env {
			if !strings.HasSuffix(e.Name, "_ADDR") || e.Name == "GRPC_ADDR" || e.Name == "HTTP_ADDR" || e.Name == "HEALTH_ADDR" || e.Name == "METRICS_ADDR" {
				continue
			}
			host, port, ok := strings.Cut(e.Value, ":")
			s := Get[corev1.Service](b, host)
			if !ok || s == nil || !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == port }) {
				t.Errorf("Deployment %s: %s=%s names no Service port", d.Name, e.Name, e.Value)
			}
		}
		// The listen address and the probes agree.
		for _, lv := range []string{"GRPC_ADDR", "HTTP_ADDR", "HEALTH_ADDR"} {
			v, ok := envValue(b, c, lv)
			if !ok {
				continue
			}
			_, port, _ := strings.Cut(v, ":")
			for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
				if p == nil {
					continue
				}
				got := ""
				switch {
				case p.GRPC != nil:
					got = strconv.Itoa(int(p.GRPC.Port))
				case p.HTTPGet != nil:
					got = p.HTTPGet.Port.String()
				}
				if got != port {
					t.Errorf("Deployment %s: a probe checks port %s, but %s=%s", d.Name, got, lv, v)
				}
			}
			if lv == "GRPC_ADDR" && (c.ReadinessProbe == nil || c.ReadinessProbe.GRPC == nil) {
				t.Errorf("Deployment %s serves gRPC: its readiness probe should be the gRPC health check", d.Name)
			}
		}
	}
	for _, svc := range services {
		if !seen[svc] {
			t.Errorf("no Deployment runs %s", svc)
		}
	}
}

func checkSecretRef(t *testing.T, where, name, key string) {
	t.Helper()
	keys, ok := externalSecrets[name]
	if !ok {
		t.Errorf("%s reads Secret %s, which deploy/README.md does not list", where, name)
		return
	}
	if !slices.Contains(keys, key) {
		t.Errorf("%s reads key %s of Secret %s; it has %v", where, key, name, keys)
	}
}

// Every workload has a PodDisruptionBudget; autoscalers target Deployments
// that exist and leave the replica count to them.
func checkDisruption(t *testing.T, b *Build) {
	pdbs := All[policyv1.PodDisruptionBudget](b)
	for name, pt := range podTemplates(b) {
		if !slices.ContainsFunc(pdbs, func(p *policyv1.PodDisruptionBudget) bool {
			sel, err := metav1LabelSelector(p.Spec.Selector)
			return err == nil && sel.Matches(labels.Set(pt.Labels))
		}) {
			t.Errorf("%s has no PodDisruptionBudget", name)
		}
	}
	for _, h := range All[autoscalingv2.HorizontalPodAutoscaler](b) {
		d := Get[appsv1.Deployment](b, h.Spec.ScaleTargetRef.Name)
		if d == nil || h.Spec.ScaleTargetRef.Kind != "Deployment" {
			t.Errorf("HorizontalPodAutoscaler %s targets %s %s, which does not exist", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
			continue
		}
		if d.Spec.Replicas != nil {
			t.Errorf("Deployment %s sets replicas although HorizontalPodAutoscaler %s owns the count", d.Name, h.Name)
		}
		// outbound-sender's pacing is per process: it may idle at one.
		least := int32(2)
		if h.Name == "outbound-sender" {
			least = 1
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < least || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			t.Errorf("HorizontalPodAutoscaler %s: replicas %v..%d", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
	}
}

// checkNATS: the server configuration holds the generated users, fsyncs
// every write, and gets every service's password.
func checkNATS(t *testing.T, b *Build) {
	ss := Get[appsv1.StatefulSet](b, "nats")
	if ss == nil {
		t.Fatal("no NATS StatefulSet")
	}
	var conf *corev1.ConfigMap
	for _, v := range ss.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			conf = Get[corev1.ConfigMap](b, v.ConfigMap.Name)
		}
	}
	if conf == nil {
		t.Fatal("the NATS StatefulSet mounts no ConfigMap that exists")
	}
	if got := conf.Data["switchboard-users.conf"]; got != subjects.NATSConf() {
		t.Error("switchboard-users.conf is not pkg/subjects.NATSConf(): run UPDATE_NATS_CONF=1 go test ./pkg/subjects -run NATSConf")
	}
	main := conf.Data["nats.conf"]
	for _, want := range []string{"sync_interval: always", `include "switchboard-users.conf"`, `include "cluster.conf"`, "store_dir: /data"} {
		if !strings.Contains(main, want) {
			t.Errorf("nats.conf lacks %q", want)
		}
	}
	c := ss.Spec.Template.Spec.Containers[0]
	for _, a := range subjects.Accesses() {
		if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
			return e.Name == subjects.PasswordVar(a.Service) && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
				e.ValueFrom.SecretKeyRef.Name == "switchboard-nats" && e.ValueFrom.SecretKeyRef.Key == a.Service
		}) {
			t.Errorf("NATS does not get %s from Secret switchboard-nats key %s", subjects.PasswordVar(a.Service), a.Service)
		}
	}
	replicas := int32(1)
	if ss.Spec.Replicas != nil {
		replicas = *ss.Spec.Replicas
	}
	cluster := conf.Data["cluster.conf"]
	routes := regexp.MustCompile(`nats://nats-(\d+)\.nats-headless:6222`).FindAllStringSubmatch(cluster, -1)
	switch {
	case replicas == 1 && strings.Contains(cluster, "cluster {"):
		t.Error("one NATS node with a cluster block: it would wait for routes that never come")
	case replicas > 1 && len(routes) != int(replicas):
		t.Errorf("%d NATS nodes but %d routes in cluster.conf", replicas, len(routes))
	}
	for _, r := range routes {
		if n, _ := strconv.Atoi(r[1]); n >= int(replicas) {
			t.Errorf("cluster.conf routes to nats-%d; the StatefulSet has %d pods", n, replicas)
		}
	}
	if ss.Spec.ServiceName == "" || Get[corev1.Service](b, ss.Spec.ServiceName) == nil {
		t.Errorf("NATS StatefulSet's serviceName %q is not a Service", ss.Spec.ServiceName)
	}
	// The server version the tests run embedded.
	_, tag, _ := strings.Cut(c.Image, ":")
	if v := goModVersion(t, "github.com/nats-io/nats-server/v2"); !strings.HasPrefix(tag, strings.TrimPrefix(v, "v")+"-") && tag != strings.TrimPrefix(v, "v") {
		t.Errorf("NATS image %s; the tests run nats-server %s (go.mod)", c.Image, v)
	}
	// Every service's stream replicas fit the cluster.
	for _, d := range All[appsv1.Deployment](b) {
		if sc := serviceContainer(d); sc != nil {
			v, _ := envValue(b, sc, "STREAM_REPLICAS")
			if n, err := strconv.Atoi(v); err != nil || n < 1 || n > int(replicas) {
				t.Errorf("Deployment %s: STREAM_REPLICAS=%q with %d NATS nodes", d.Name, v, replicas)
			}
		}
	}
}

func goModVersion(t *testing.T, module string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(module) + `\s+(\S+)`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("go.mod does not require %s", module)
	}
	return m[1]
}

func TestDevOverlay(t *testing.T) {
	b := render(t, "overlays/dev")
	if h := All[autoscalingv2.HorizontalPodAutoscaler](b); len(h) != 0 {
		t.Errorf("dev has %d autoscalers, want none", len(h))
	}
	for _, d := range All[appsv1.Deployment](b) {
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
			t.Errorf("dev Deployment %s: replicas %v, want 1", d.Name, d.Spec.Replicas)
		}
		c := serviceContainer(d)
		if v, _ := envValue(b, c, "STREAM_REPLICAS"); v != "1" {
			t.Errorf("dev Deployment %s: STREAM_REPLICAS=%q, want 1", d.Name, v)
		}
	}
	if ss := Get[appsv1.StatefulSet](b, "nats"); ss == nil || ss.Spec.Replicas == nil || *ss.Spec.Replicas != 1 {
		t.Error("dev NATS: want one node")
	}
	ch := serviceContainer(Get[appsv1.Deployment](b, "chat-handler"))
	if v, _ := envValue(b, ch, "DURABILITY"); v != "fsync" {
		t.Errorf("dev chat-handler DURABILITY=%q, want fsync (one node that fsyncs every write)", v)
	}
	if v, _ := envValue(b, ch, "NATS_MONITOR_URL"); v != "http://nats:8222" {
		t.Errorf("dev chat-handler NATS_MONITOR_URL=%q, want the NATS monitoring port so fsync is verified", v)
	}
}

func TestProdOverlay(t *testing.T) {
	b := render(t, "overlays/prod")
	hpas := map[string]bool{}
	for _, h := range All[autoscalingv2.HorizontalPodAutoscaler](b) {
		hpas[h.Spec.ScaleTargetRef.Name] = true
	}
	for _, svc := range []string{"chat-handler", "sessions", "outbound-sender", "workflow-runner", "config", "reporting", "distribution"} {
		if !hpas[svc] {
			t.Errorf("prod: no HorizontalPodAutoscaler for %s", svc)
		}
	}
	for _, d := range All[appsv1.Deployment](b) {
		c := serviceContainer(d)
		if v, _ := envValue(b, c, "STREAM_REPLICAS"); v != "3" {
			t.Errorf("prod Deployment %s: STREAM_REPLICAS=%q, want 3", d.Name, v)
		}
		aff := d.Spec.Template.Spec.Affinity
		if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
			t.Errorf("prod Deployment %s: no pod anti-affinity", d.Name)
		} else {
			term := aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
			if term.LabelSelector == nil || term.LabelSelector.MatchLabels["app.kubernetes.io/name"] != d.Name {
				t.Errorf("prod Deployment %s: anti-affinity selects %v, want its own pods", d.Name, term.LabelSelector)
			}
		}
	}
	ch := serviceContainer(Get[appsv1.Deployment](b, "chat-handler"))
	if v, _ := envValue(b, ch, "DURABILITY"); v != "replicated" {
		t.Errorf("prod chat-handler DURABILITY=%q, want replicated", v)
	}
	ss := Get[appsv1.StatefulSet](b, "nats")
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 3 {
		t.Errorf("prod NATS replicas %v, want 3", ss.Spec.Replicas)
	}
	if a := ss.Spec.Template.Spec.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 ||
		len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 0 {
		t.Errorf("prod NATS: want exactly one required anti-affinity term (one node per host), got %+v", a)
	}
}

// The ingress serves the host Twilio calls, with TLS, and only it reaches
// the public ports.
func TestIngressComponent(t *testing.T) {
	for _, b := range []*Build{withComponents(t, "overlays/dev", "components/ingress"), render(t, "overlays/prod")} {
		ch := serviceContainer(Get[appsv1.Deployment](b, "chat-handler"))
		base, _ := envValue(b, ch, "PUBLIC_BASE_URL")
		u, err := url.Parse(base)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			t.Fatalf("%s: PUBLIC_BASE_URL=%q, want https://host", b.Name, base)
		}
		ob := serviceContainer(Get[appsv1.Deployment](b, "outbound-sender"))
		if v, _ := envValue(b, ob, "STATUS_CALLBACK_BASE_URL"); v != base {
			t.Errorf("%s: outbound-sender STATUS_CALLBACK_BASE_URL=%q, want PUBLIC_BASE_URL %q", b.Name, v, base)
		}
		ings := All[networkingv1.Ingress](b)
		paths := map[string]string{}
		for _, ing := range ings {
			if len(ing.Spec.TLS) != 1 || !slices.Equal(ing.Spec.TLS[0].Hosts, []string{u.Hostname()}) {
				t.Errorf("%s: Ingress %s TLS %+v, want host %s", b.Name, ing.Name, ing.Spec.TLS, u.Hostname())
			}
			for _, r := range ing.Spec.Rules {
				if r.Host != u.Hostname() {
					t.Errorf("%s: Ingress %s host %q, want %q from PUBLIC_BASE_URL", b.Name, ing.Name, r.Host, u.Hostname())
				}
				for _, p := range r.HTTP.Paths {
					paths[p.Path] = p.Backend.Service.Name
				}
			}
		}
		for path, svc := range map[string]string{"/api/acs/chat-handler/": "chat-handler", "/api/agent/": "sessions", "/": "sessions"} {
			if paths[path] != svc {
				t.Errorf("%s: %s routes to %q, want %s", b.Name, path, paths[path], svc)
			}
		}
		internet := endpoint{ns: map[string]string{"kubernetes.io/metadata.name": "elsewhere"}, ip: "203.0.113.9"}
		controller := endpoint{ns: map[string]string{"kubernetes.io/metadata.name": "ingress-nginx"}, pod: map[string]string{"app.kubernetes.io/name": "ingress-nginx"}}
		for svc, port := range map[string]int{"chat-handler": 8080, "sessions": 8081} {
			if !ingressAllowed(b, controller, pod(b, svc), port) {
				t.Errorf("%s: the ingress controller cannot reach %s:%d", b.Name, svc, port)
			}
			if ingressAllowed(b, internet, pod(b, svc), port) {
				t.Errorf("%s: %s:%d is open to everyone behind the ingress", b.Name, svc, port)
			}
		}
	}
}

// skaffold.yaml builds every deployed service's image and deploys the
// overlays.
func TestSkaffold(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "skaffold.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type manifests struct {
		Kustomize struct {
			Paths []string `yaml:"paths"`
		} `yaml:"kustomize"`
	}
	type buildCfg struct {
		Local struct {
			Push bool `yaml:"push"`
		} `yaml:"local"`
		Artifacts []struct {
			Image string `yaml:"image"`
			Ko    struct {
				Main string `yaml:"main"`
			} `yaml:"ko"`
		} `yaml:"artifacts"`
	}
	var cfg struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   map[string]string `yaml:"metadata"`
		Build      buildCfg          `yaml:"build"`
		Manifests  manifests         `yaml:"manifests"`
		Deploy     map[string]any    `yaml:"deploy"`
		Profiles   []struct {
			Name      string    `yaml:"name"`
			Build     buildCfg  `yaml:"build"`
			Manifests manifests `yaml:"manifests"`
		} `yaml:"profiles"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("skaffold.yaml: %v", err)
	}
	if !strings.HasPrefix(cfg.APIVersion, "skaffold/") || cfg.Kind != "Config" {
		t.Errorf("skaffold.yaml is %s %s", cfg.APIVersion, cfg.Kind)
	}
	images := map[string]string{}
	for _, a := range cfg.Build.Artifacts {
		images[a.Image] = a.Ko.Main
	}
	for _, svc := range services {
		img := "ko://github.com/switchboard-cc/switchboard/services/" + svc + "/cmd/" + svc
		if main, ok := images[img]; !ok || main != "./services/"+svc+"/cmd/"+svc {
			t.Errorf("skaffold.yaml does not build %s with ko from ./services/%s/cmd/%s", svc, svc, svc)
		}
		delete(images, img)
	}
	for img := range images {
		t.Errorf("skaffold.yaml builds %s, which no Deployment runs", img)
	}
	paths := slices.Clone(cfg.Manifests.Kustomize.Paths)
	for _, p := range cfg.Profiles {
		paths = append(paths, p.Manifests.Kustomize.Paths...)
	}
	for _, want := range []string{"deploy/overlays/dev", "deploy/overlays/prod"} {
		if !slices.Contains(paths, want) {
			t.Errorf("skaffold.yaml deploys %v, want %s among them", paths, want)
		}
	}
	for _, p := range paths {
		if _, err := os.Stat(filepath.Join("..", p, "kustomization.yaml")); err != nil {
			t.Errorf("skaffold.yaml deploys %s: %v", p, err)
		}
	}
}
