package gateway

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The hijacked connection gets the small buffers, and bytes the server
// read past the request (a client writing its first frame with the
// upgrade) are still read first, after the websocket library resets the
// reader onto the connection as it does.
func TestSmallBuffersKeepWhatWasReadAhead(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := smallBuffers{w}.Hijack()
		if err != nil {
			got <- "hijack: " + err.Error()
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // lost bytes: an error, not a hang
		if brw.Reader.Size() != max(socketReadBuffer, brw.Reader.Buffered()) || brw.Writer.Size() != socketWriteBuffer {
			got <- "buffer sizes"
			return
		}
		// What the websocket library does with the reader it is handed.
		b, _ := brw.Reader.Peek(brw.Reader.Buffered())
		brw.Reader.Reset(io.MultiReader(bytes.NewReader(b), c))
		line, err := brw.Reader.ReadString('\n')
		if err != nil {
			got <- "read: " + err.Error()
			return
		}
		got <- line
	}))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The request and what follows it in one write: the server's reader
	// takes both at once.
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\nthe first frame\n")); err != nil {
		t.Fatal(err)
	}
	if line := <-got; line != "the first frame\n" {
		t.Fatalf("read %q after the hijack, want the bytes sent with the request", line)
	}
}
