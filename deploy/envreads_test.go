package deploy_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// envMethods are the pkg/mainrun Env methods that read a variable named by
// their first argument.
var envMethods = map[string]bool{"String": true, "Int": true, "Bool": true, "Duration": true, "List": true, "Secret": true}

// runtimeVars are read by the Go runtime, not by main.go.
var runtimeVars = map[string]bool{"GOMEMLIMIT": true, "GOMAXPROCS": true, "GOGC": true, "GODEBUG": true}

// funcReads is what one function reads directly, and the same-package
// functions (or, for main, mainrun functions) it calls.
type funcReads struct {
	vars  map[string]bool
	calls []string
}

// scan collects env.<Method>("NAME") reads and calls in a function body.
// Secret("X") also reads X_FILE. calleePkg "" collects calls to functions of
// the same package; "mainrun" collects mainrun.F calls.
func scan(body ast.Node, calleePkg string) funcReads {
	r := funcReads{vars: map[string]bool{}}
	ast.Inspect(body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		switch fn := call.Fun.(type) {
		case *ast.SelectorExpr:
			if x, ok := fn.X.(*ast.Ident); ok && calleePkg != "" && x.Name == calleePkg {
				r.calls = append(r.calls, fn.Sel.Name)
				return true
			}
			if !envMethods[fn.Sel.Name] || len(call.Args) == 0 {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			name, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			r.vars[name] = true
			if fn.Sel.Name == "Secret" {
				r.vars[name+"_FILE"] = true
			}
		case *ast.Ident:
			if calleePkg == "" {
				r.calls = append(r.calls, fn.Name)
			}
		}
		return true
	})
	return r
}

func parseFile(t *testing.T, path string) *ast.File {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return f
}

// mainrunReads maps each top-level function of pkg/mainrun to every
// variable it reads, directly or through the package's other functions
// (Main → Logger → LOG_LEVEL; NATSAuth → NATS_PASSWORD and its _FILE).
func mainrunReads(t *testing.T) map[string]map[string]bool {
	t.Helper()
	f := parseFile(t, filepath.Join("..", "pkg", "mainrun", "mainrun.go"))
	direct := map[string]funcReads{}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Body != nil {
			direct[fd.Name.Name] = scan(fd.Body, "")
		}
	}
	out := map[string]map[string]bool{}
	var visit func(name string, seen map[string]bool, into map[string]bool)
	visit = func(name string, seen map[string]bool, into map[string]bool) {
		if seen[name] {
			return
		}
		seen[name] = true
		r, ok := direct[name]
		if !ok {
			return
		}
		for v := range r.vars {
			into[v] = true
		}
		for _, c := range r.calls {
			visit(c, seen, into)
		}
	}
	for name := range direct {
		vars := map[string]bool{}
		visit(name, map[string]bool{}, vars)
		out[name] = vars
	}
	return out
}

// serviceReads is every environment variable services/<svc>/cmd/<svc>/main.go
// reads, with those of the pkg/mainrun functions it calls.
func serviceReads(t *testing.T, svc string, lib map[string]map[string]bool) map[string]bool {
	t.Helper()
	// main.go, and the package's env.go where the service reads its
	// configuration there (sessions: a benchmark starts replicas with it).
	files := []string{filepath.Join("..", "services", svc, "cmd", svc, "main.go")}
	if p := filepath.Join("..", "services", svc, "env.go"); fileExists(p) {
		files = append(files, p)
	}
	vars := map[string]bool{}
	for _, name := range files {
		r := scan(parseFile(t, name), "mainrun")
		for v := range r.vars {
			vars[v] = true
		}
		for _, c := range r.calls {
			for v := range lib[c] {
				vars[v] = true
			}
		}
	}
	return vars
}

// The scanner itself: a sample of what it must find, so a change in how
// main.go files are written cannot make the env check vacuous.
func TestEnvReadsScanner(t *testing.T) {
	lib := mainrunReads(t)
	for _, want := range []string{"LOG_LEVEL", "LOG_FORMAT", "OTEL_EXPORTER_OTLP_ENDPOINT", "HEALTH_ADDR"} {
		if !lib["Main"][want] {
			t.Errorf("mainrun.Main reads %v, want %s among them", sortedKeys(lib["Main"]), want)
		}
	}
	for _, want := range []string{"NATS_USER", "NATS_PASSWORD", "NATS_PASSWORD_FILE", "NATS_CREDS", "NATS_TLS_CA"} {
		if !lib["NATSAuth"][want] {
			t.Errorf("mainrun.NATSAuth reads %v, want %s among them", sortedKeys(lib["NATSAuth"]), want)
		}
	}
	if !lib["StreamOptions"]["STREAM_REPLICAS"] {
		t.Errorf("mainrun.StreamOptions reads %v, want STREAM_REPLICAS", sortedKeys(lib["StreamOptions"]))
	}
	reads := serviceReads(t, "chat-handler", lib)
	for _, want := range []string{"PUBLIC_BASE_URL", "DURABILITY", "HTTP_ADDR", "SWITCHBOARD_AUTH_KEYS_FILE", "NATS_URL", "STREAM_REPLICAS", "LOG_LEVEL"} {
		if !reads[want] {
			t.Errorf("chat-handler reads %v, want %s among them", sortedKeys(reads), want)
		}
	}
	if reads["MONGO_URI"] {
		t.Error("chat-handler reads MONGO_URI according to the scanner; it has no database")
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
