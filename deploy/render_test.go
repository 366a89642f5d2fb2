// Package deploy_test renders every kustomize overlay and component under
// deploy/ with the kustomize API and checks the result against the
// Kubernetes API types and against the services themselves: no cluster is
// needed, so `make test` runs it everywhere.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Object is one rendered manifest, decoded into its API type.
type Object struct {
	Kind, Name string
	// Value is a pointer to the typed struct (*appsv1.Deployment, …).
	Value any
}

// Build is one rendered kustomization.
type Build struct {
	Name    string
	Objects []Object
}

// All returns the objects of type T.
func All[T any](b *Build) []*T {
	var out []*T
	for _, o := range b.Objects {
		if v, ok := o.Value.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}

// Get returns the object of type T named name, or nil.
func Get[T any](b *Build, name string) *T {
	for _, o := range b.Objects {
		if v, ok := o.Value.(*T); ok && o.Name == name {
			return v
		}
	}
	return nil
}

// The custom resources the components use, as much of their schema as the
// manifests use: decoding is strict, so a misspelt or misplaced field fails.
type (
	ServiceMonitor struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			Selector  metav1.LabelSelector `json:"selector"`
			Endpoints []struct {
				Port     string `json:"port"`
				Interval string `json:"interval,omitempty"`
				Path     string `json:"path,omitempty"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	PrometheusRule struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Alert       string            `json:"alert"`
					Expr        string            `json:"expr"`
					For         string            `json:"for,omitempty"`
					Labels      map[string]string `json:"labels,omitempty"`
					Annotations map[string]string `json:"annotations,omitempty"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	ExternalSecret struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			RefreshInterval string `json:"refreshInterval"`
			SecretStoreRef  struct {
				Kind string `json:"kind"`
				Name string `json:"name"`
			} `json:"secretStoreRef"`
			Target struct {
				Name           string `json:"name"`
				CreationPolicy string `json:"creationPolicy"`
			} `json:"target"`
			Data []struct {
				SecretKey string `json:"secretKey"`
				RemoteRef struct {
					Key      string `json:"key"`
					Property string `json:"property"`
				} `json:"remoteRef"`
			} `json:"data"`
		} `json:"spec"`
	}
)

// kinds maps apiVersion/kind to a new typed value; anything else fails.
var kinds = map[string]func() any{
	"apps/v1/Deployment":                      func() any { return new(appsv1.Deployment) },
	"apps/v1/StatefulSet":                     func() any { return new(appsv1.StatefulSet) },
	"v1/Service":                              func() any { return new(corev1.Service) },
	"v1/ConfigMap":                            func() any { return new(corev1.ConfigMap) },
	"policy/v1/PodDisruptionBudget":           func() any { return new(policyv1.PodDisruptionBudget) },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return new(networkingv1.NetworkPolicy) },
	"networking.k8s.io/v1/Ingress":            func() any { return new(networkingv1.Ingress) },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return new(ServiceMonitor) },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return new(PrometheusRule) },
	"external-secrets.io/v1/ExternalSecret":   func() any { return new(ExternalSecret) },
}

// render builds the kustomization in dir (relative to deploy/) and decodes
// every object strictly.
func render(t *testing.T, dir string) *Build {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return renderAbs(t, dir, abs)
}

func renderAbs(t *testing.T, name, abs string) *Build {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", name, err)
	}
	b := &Build{Name: name}
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatalf("%s: %s: %v", name, r.CurId(), err)
		}
		j, err := yaml.YAMLToJSON(y)
		if err != nil {
			t.Fatalf("%s: %s: %v", name, r.CurId(), err)
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(j, &tm); err != nil {
			t.Fatalf("%s: %s: %v", name, r.CurId(), err)
		}
		gvk := tm.APIVersion + "/" + tm.Kind
		mk, ok := kinds[gvk]
		if !ok {
			t.Errorf("%s: %s %s: kind not expected in a Switchboard deployment", name, gvk, r.GetName())
			continue
		}
		v := mk()
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Errorf("%s: %s %s does not decode strictly as %s: %v", name, tm.Kind, r.GetName(), gvk, err)
			continue
		}
		b.Objects = append(b.Objects, Object{Kind: tm.Kind, Name: r.GetName(), Value: v})
	}
	return b
}

// withComponents renders a temporary kustomization: overlay plus the
// components (directories relative to deploy/).
func withComponents(t *testing.T, overlay string, components ...string) *Build {
	t.Helper()
	dir := t.TempDir()
	// kustomize takes relative paths only.
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := filepath.Rel(dir, a)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var k strings.Builder
	k.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - " + abs(overlay) + "\ncomponents:\n")
	for _, c := range components {
		k.WriteString("  - " + abs(c) + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return renderAbs(t, overlay+"+"+strings.Join(components, "+"), dir)
}

// services are the deployed Switchboard services (devstack and twilio-sim
// never are).
var services = []string{"chat-handler", "config", "distribution", "outbound-sender", "reporting", "sessions", "workflow-runner"}

// podTemplates are the pod templates of every Deployment and StatefulSet.
func podTemplates(b *Build) map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, d := range All[appsv1.Deployment](b) {
		out["Deployment/"+d.Name] = &d.Spec.Template
	}
	for _, s := range All[appsv1.StatefulSet](b) {
		out["StatefulSet/"+s.Name] = &s.Spec.Template
	}
	return out
}

func configMapValue(b *Build, ref *corev1.ConfigMapKeySelector) (string, bool) {
	for _, cm := range All[corev1.ConfigMap](b) {
		if cm.Name == ref.Name {
			v, ok := cm.Data[ref.Key]
			return v, ok
		}
	}
	return "", false
}

// envValue resolves a container's variable (literal or ConfigMap key).
func envValue(b *Build, c *corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name != name {
			continue
		}
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			return configMapValue(b, e.ValueFrom.ConfigMapKeyRef)
		}
		return e.Value, e.ValueFrom == nil
	}
	return "", false
}

// serviceContainer is the Switchboard service's container of a Deployment
// (the one running its ko:// image), or nil.
func serviceContainer(d *appsv1.Deployment) *corev1.Container {
	for i := range d.Spec.Template.Spec.Containers {
		c := &d.Spec.Template.Spec.Containers[i]
		if strings.HasPrefix(c.Image, "ko://") {
			return c
		}
	}
	return nil
}

// builds renders every overlay on its own, each component on the dev
// overlay and all components on prod: every combination a user is told to
// deploy.
func builds(t *testing.T) []*Build {
	t.Helper()
	comps := []string{"components/ingress", "components/otel-collector", "components/service-monitor", "components/external-secrets"}
	out := []*Build{render(t, "overlays/dev"), render(t, "overlays/prod")}
	for _, c := range comps {
		out = append(out, withComponents(t, "overlays/dev", c))
	}
	// prod already has the ingress component.
	out = append(out, withComponents(t, "overlays/prod", comps[1:]...))
	return out
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
