package deploy_test

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// ourNamespace stands for the namespace an overlay deploys to.
const ourNamespace = "switchboard"

// endpoint is one end of a connection: a pod (ours, or in another
// namespace) or an address outside the cluster.
type endpoint struct {
	name string
	ours bool
	ns   map[string]string
	pod  map[string]string
	ip   string
}

func metav1LabelSelector(s *metav1.LabelSelector) (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(s)
}

// pod is a pod of the named Deployment or StatefulSet in our namespace.
func pod(b *Build, name string) endpoint {
	for key, pt := range podTemplates(b) {
		if strings.HasSuffix(key, "/"+name) {
			return endpoint{name: name, ours: true, ns: map[string]string{"kubernetes.io/metadata.name": ourNamespace}, pod: pt.Labels}
		}
	}
	return endpoint{name: name}
}

func external(ip string) endpoint { return endpoint{name: ip, ip: ip} }

func selects(sel *metav1.LabelSelector, set map[string]string) bool {
	s, err := metav1LabelSelector(sel)
	return err == nil && s.Matches(labels.Set(set))
}

func peerMatches(p networkingv1.NetworkPolicyPeer, ep endpoint) bool {
	if p.IPBlock != nil {
		if ep.ip == "" {
			return false
		}
		ip := net.ParseIP(ep.ip)
		_, cidr, err := net.ParseCIDR(p.IPBlock.CIDR)
		if err != nil || !cidr.Contains(ip) {
			return false
		}
		for _, ex := range p.IPBlock.Except {
			if _, c, err := net.ParseCIDR(ex); err == nil && c.Contains(ip) {
				return false
			}
		}
		return true
	}
	if ep.pod == nil {
		return false
	}
	if p.NamespaceSelector == nil {
		if !ep.ours {
			return false
		}
	} else if !selects(p.NamespaceSelector, ep.ns) {
		return false
	}
	return p.PodSelector == nil || selects(p.PodSelector, ep.pod)
}

func portMatches(ports []networkingv1.NetworkPolicyPort, port int) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP && *p.Protocol != corev1.ProtocolUDP {
			continue
		}
		if p.Port == nil {
			return true
		}
		lo := p.Port.IntValue()
		hi := lo
		if p.EndPort != nil {
			hi = int(*p.EndPort)
		}
		if port >= lo && port <= hi {
			return true
		}
	}
	return false
}

func policiesFor(b *Build, ep endpoint, kind networkingv1.PolicyType) []*networkingv1.NetworkPolicy {
	if !ep.ours {
		return nil
	}
	var out []*networkingv1.NetworkPolicy
	for _, np := range All[networkingv1.NetworkPolicy](b) {
		if slices.Contains(np.Spec.PolicyTypes, kind) && selects(&np.Spec.PodSelector, ep.pod) {
			out = append(out, np)
		}
	}
	return out
}

// egressAllowed: may from open a connection to to:port as far as from's
// policies go.
func egressAllowed(b *Build, from, to endpoint, port int) bool {
	nps := policiesFor(b, from, networkingv1.PolicyTypeEgress)
	if len(nps) == 0 {
		return true
	}
	for _, np := range nps {
		for _, r := range np.Spec.Egress {
			if portMatches(r.Ports, port) && (len(r.To) == 0 || slices.ContainsFunc(r.To, func(p networkingv1.NetworkPolicyPeer) bool { return peerMatches(p, to) })) {
				return true
			}
		}
	}
	return false
}

// ingressAllowed: may to:port accept a connection from from as far as to's
// policies go.
func ingressAllowed(b *Build, from, to endpoint, port int) bool {
	nps := policiesFor(b, to, networkingv1.PolicyTypeIngress)
	if len(nps) == 0 {
		return true
	}
	for _, np := range nps {
		for _, r := range np.Spec.Ingress {
			if portMatches(r.Ports, port) && (len(r.From) == 0 || slices.ContainsFunc(r.From, func(p networkingv1.NetworkPolicyPeer) bool { return peerMatches(p, from) })) {
				return true
			}
		}
	}
	return false
}

func allowed(b *Build, from, to endpoint, port int) bool {
	return egressAllowed(b, from, to, port) && ingressAllowed(b, from, to, port)
}

// checkFlows: between the services and NATS exactly the connections the
// architecture has are allowed: the gRPC addresses each service is given
// (*_ADDR), NATS for everyone, NATS monitoring for chat-handler's
// durability check, routes between NATS nodes. Outside: DNS for all,
// MongoDB for the services with MONGO_URI, HTTPS to public addresses for
// outbound-sender, config and chat-handler (Twilio), HTTP(S) for workflow-runner (Web
// Request, Bot), nothing else.
func checkFlows(t *testing.T, b *Build) {
	type flow struct {
		from, to string
		port     int
	}
	want := map[flow]bool{}
	workloads := append(slices.Clone(services), "nats")
	for _, w := range workloads {
		if pod(b, w).pod == nil {
			t.Errorf("no workload %s: flows not checked", w)
			return
		}
	}
	for _, d := range All[appsv1.Deployment](b) {
		c := serviceContainer(d)
		if c == nil {
			continue
		}
		want[flow{d.Name, "nats", 4222}] = true
		for _, e := range c.Env {
			switch {
			case e.Name == "NATS_MONITOR_URL":
				want[flow{d.Name, "nats", 8222}] = true
			case strings.HasSuffix(e.Name, "_ADDR") && !slices.Contains([]string{"GRPC_ADDR", "HTTP_ADDR", "HEALTH_ADDR", "METRICS_ADDR"}, e.Name):
				host, port, _ := strings.Cut(e.Value, ":")
				var n int
				_, _ = fmt.Sscan(port, &n)
				want[flow{d.Name, host, n}] = true
			}
		}
	}
	want[flow{"nats", "nats", 6222}] = true

	for _, from := range workloads {
		for _, to := range workloads {
			var ports []int
			for _, pt := range podTemplates(b) {
				if pt.Labels["app.kubernetes.io/name"] != to {
					continue
				}
				for _, c := range pt.Spec.Containers {
					for _, p := range c.Ports {
						ports = append(ports, int(p.ContainerPort))
					}
				}
			}
			for _, port := range ports {
				got := allowed(b, pod(b, from), pod(b, to), port)
				if w := want[flow{from, to, port}]; got != w {
					t.Errorf("%s → %s:%d allowed = %v, want %v", from, to, port, got, w)
				}
			}
		}
	}

	dns := endpoint{name: "kube-dns", ns: map[string]string{"kubernetes.io/metadata.name": "kube-system"}, pod: map[string]string{"k8s-app": "kube-dns"}}
	twilio, private := external("203.0.113.10"), external("10.1.2.3")
	for _, name := range workloads {
		p := pod(b, name)
		if !egressAllowed(b, p, dns, 53) {
			t.Errorf("%s cannot resolve names (DNS to kube-dns:53)", name)
		}
		if name == "nats" {
			continue
		}
		d := Get[appsv1.Deployment](b, name)
		_, mongo := envValue(b, serviceContainer(d), "MONGO_URI")
		mongo = mongo || slices.ContainsFunc(serviceContainer(d).Env, func(e corev1.EnvVar) bool { return e.Name == "MONGO_URI" })
		if got := egressAllowed(b, p, external("198.51.100.7"), 27017); got != mongo {
			t.Errorf("%s → MongoDB (external :27017) allowed = %v, want %v", name, got, mongo)
		}
		for _, port := range []int{443, 80} {
			w := (port == 443 && (name == "outbound-sender" || name == "config" || name == "chat-handler")) || name == "workflow-runner"
			if got := egressAllowed(b, p, twilio, port); got != w {
				t.Errorf("%s → public address :%d allowed = %v, want %v", name, port, got, w)
			}
			if egressAllowed(b, p, private, port) {
				t.Errorf("%s → private address %s:%d is allowed", name, private.ip, port)
			}
		}
	}
}
