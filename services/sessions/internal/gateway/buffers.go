package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// An idle socket's largest costs are the HTTP server's buffers, which the
// websocket library keeps for the connection's life once it hijacks it: a
// 4 KiB reader and a 4 KiB writer, about 40% of what an idle socket holds.
// Agent frames are small (a few hundred bytes; at most 64 KiB in), so the
// socket gets smaller ones: a larger frame passes in a few reads or
// writes, and a read larger than the buffer goes to the connection
// directly. With 20,000 consoles open this is about 100 MB less.
const (
	socketReadBuffer  = 1024
	socketWriteBuffer = 2048
)

// smallBuffers hands the websocket library the hijacked connection with
// smaller buffers. What the server had already read past the upgrade
// request (a client may send its auth frame at once) stays buffered in
// front of the connection.
type smallBuffers struct{ http.ResponseWriter }

func (s smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	var pending []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		pending = bytes.Clone(b)
	}
	var src io.Reader = c
	if len(pending) > 0 {
		src = io.MultiReader(bytes.NewReader(pending), c)
	}
	r := bufio.NewReaderSize(src, max(socketReadBuffer, len(pending)))
	if len(pending) > 0 {
		// Into the buffer, where the library looks for it: it replaces
		// the reader's source with the connection.
		if _, err := r.Peek(len(pending)); err != nil {
			_ = c.Close()
			return nil, nil, err
		}
	}
	return c, bufio.NewReadWriter(r, bufio.NewWriterSize(c, socketWriteBuffer)), nil
}
