package attachment_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/attachment"
)

// A file is fetched whole with its type; a failure says whether fetching
// again can help: a file that is gone, too large or not at an http(s) URL
// cannot, a server error or an unreachable server may.
func TestFetch(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /media/ok", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png; charset=binary")
		_, _ = w.Write([]byte("\x89PNG data"))
	})
	mux.HandleFunc("GET /media/down", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("GET /media/big", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(make([]byte, 101)) })
	mux.HandleFunc("GET /media/chunked", func(w http.ResponseWriter, r *http.Request) {
		for range 3 {
			_, _ = w.Write(make([]byte, 50))
			w.(http.Flusher).Flush() // no Content-Length
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dead := httptest.NewServer(mux)
	deadURL := dead.URL
	dead.Close()

	f := attachment.New(nil, 0)
	ctx := context.Background()
	got, err := f.Fetch(ctx, srv.URL+"/media/ok", 100)
	if err != nil || got.ContentType != "image/png" || !bytes.Equal(got.Data, []byte("\x89PNG data")) {
		t.Fatalf("Fetch ok = %+v, %v", got, err)
	}
	for _, tc := range []struct {
		name, url string
		permanent bool
		words     string
	}{
		{"gone", srv.URL + "/media/gone", true, "404"},
		{"larger than allowed", srv.URL + "/media/big", true, "more than"},
		{"larger than allowed, no length", srv.URL + "/media/chunked", true, "more than"},
		{"not http", "ftp://example.com/media/x", true, "http"},
		{"credentials in the URL", strings.Replace(srv.URL, "http://", "http://u:p@", 1) + "/media/ok", true, "credentials"},
		{"server error", srv.URL + "/media/down", false, "503"},
		{"unreachable", deadURL + "/media/ok", false, "refused"},
	} {
		_, err := f.Fetch(ctx, tc.url, 100)
		e, ok := attachment.IsError(err)
		if !ok || e.Permanent != tc.permanent || !strings.Contains(err.Error(), tc.words) {
			t.Errorf("%s: %v (permanent %v), want permanent %v naming %q", tc.name, err, ok && e.Permanent, tc.permanent, tc.words)
		}
	}
}
