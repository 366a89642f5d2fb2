package ferret

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// SQLite lets one transaction at a time write a database file; FerretDB
// keeps one file per database and opens up to 100 connections to it, so
// concurrent writes of one database meet SQLite's lock, and a writer that
// finds it taken polls: SQLite's busy handler sleeps 1, 2, 5, 10, ... up
// to 100 ms between tries. Under load most of a write's time went to those
// sleeps while the cores idled (a profile of 200 new sessions/s: 28 inserts
// of one database asleep in the busy handler at once, 1.3 of 2 cores busy).
//
// The gate is a proxy in front of the server: it lets one write command
// per database through at a time and queues the others on a Go mutex, so
// the next write starts the moment the last one's answer is back. Reads
// pass at once (SQLite's WAL serves them beside a writer). Every client
// connection gets its own connection to the server, and a request's
// answers go back before the connection's next request is read, as the
// wire protocol has it.

const (
	opMsg = 2013

	flagMoreToCome = 1 << 1

	// maxMessage bounds a message the gate reads (MongoDB's own limit is
	// 48 MB).
	maxMessage = 64 << 20
)

// writeCommands are the commands that write a database's file.
var writeCommands = map[string]bool{
	"insert": true, "update": true, "delete": true, "findAndModify": true,
	"create": true, "drop": true, "dropDatabase": true, "createIndexes": true, "dropIndexes": true,
	"renameCollection": true,
}

// gate proxies connections from its listener to the server at target.
type gate struct {
	lis    net.Listener
	target string

	mu  sync.Mutex
	dbs map[string]*sync.Mutex

	conns  sync.WaitGroup
	closed atomic.Bool
	// gated counts the write commands let through, for tests.
	gated atomic.Int64
	open  map[net.Conn]struct{}
	omu   sync.Mutex
}

func newGate(lis net.Listener, target string) *gate {
	g := &gate{lis: lis, target: target, dbs: map[string]*sync.Mutex{}, open: map[net.Conn]struct{}{}}
	g.conns.Add(1)
	go g.accept()
	return g
}

func (g *gate) accept() {
	defer g.conns.Done()
	var pause time.Duration
	for {
		c, err := g.lis.Accept()
		if err != nil {
			if g.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of files, say: try again, as net/http does, rather
			// than leave the database unreachable.
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			time.Sleep(pause)
			continue
		}
		pause = 0
		g.conns.Add(1)
		go func() {
			defer g.conns.Done()
			g.serve(c)
		}()
	}
}

// close stops accepting, closes every connection and waits for them.
func (g *gate) close() {
	g.closed.Store(true)
	_ = g.lis.Close()
	g.omu.Lock()
	for c := range g.open {
		_ = c.Close()
	}
	g.omu.Unlock()
	g.conns.Wait()
}

func (g *gate) track(c net.Conn, on bool) bool {
	g.omu.Lock()
	defer g.omu.Unlock()
	if on {
		if g.closed.Load() {
			return false
		}
		g.open[c] = struct{}{}
	} else {
		delete(g.open, c)
	}
	return true
}

func (g *gate) lock(db string) *sync.Mutex {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.dbs[db]
	if m == nil {
		m = &sync.Mutex{}
		g.dbs[db] = m
	}
	return m
}

// serve relays one client connection until either side closes it.
func (g *gate) serve(client net.Conn) {
	defer func() { _ = client.Close() }()
	server, err := net.Dial("tcp", g.target)
	if err != nil {
		return
	}
	defer func() { _ = server.Close() }()
	if !g.track(client, true) {
		return
	}
	defer g.track(client, false)
	if !g.track(server, true) {
		return
	}
	defer g.track(server, false)
	var req, resp []byte
	for {
		if req, err = readMessage(client, req); err != nil {
			return
		}
		db, write, oneWay := inspect(req)
		var held *sync.Mutex
		if write {
			held = g.lock(db)
			held.Lock()
			g.gated.Add(1)
		}
		err = relay(client, server, req, oneWay, &resp)
		if held != nil {
			held.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// relay sends req to the server and its answers back: none for a one-way
// request (moreToCome), else the answer to req and, while an answer says
// more are to come, the ones that follow it. FerretDB answers one-way
// requests all the same; such an answer reaches the connection before the
// next request's and is dropped here (its responseTo names the one-way
// request), where the driver would have taken it for the next answer.
func relay(client, server net.Conn, req []byte, oneWay bool, resp *[]byte) error {
	if _, err := server.Write(req); err != nil {
		return err
	}
	if oneWay {
		return nil
	}
	awaited := binary.LittleEndian.Uint32(req[4:8])
	for {
		var err error
		if *resp, err = readMessage(server, *resp); err != nil {
			return err
		}
		if binary.LittleEndian.Uint32((*resp)[8:12]) != awaited {
			continue
		}
		if _, err := client.Write(*resp); err != nil {
			return err
		}
		_, _, more := inspect(*resp)
		if !more {
			return nil
		}
		awaited = binary.LittleEndian.Uint32((*resp)[4:8])
	}
}

// readMessage reads one whole wire message into buf's storage.
func readMessage(r io.Reader, buf []byte) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return buf, err
	}
	n := int(int32(binary.LittleEndian.Uint32(head[:])))
	if n < 16 || n > maxMessage {
		return buf, fmt.Errorf("wire message of %d bytes", n)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	copy(buf, head[:])
	_, err := io.ReadFull(r, buf[4:])
	return buf, err
}

// inspect reads an OP_MSG's database and command: whether it is a write,
// and whether its sender expects no answer (moreToCome) or, for an
// answer, more answers follow. Anything else (the handshake's OP_QUERY,
// a compressed message) is a read the server answers once.
func inspect(m []byte) (db string, write, moreToCome bool) {
	if len(m) < 21 || binary.LittleEndian.Uint32(m[12:16]) != opMsg {
		return "", false, false
	}
	moreToCome = binary.LittleEndian.Uint32(m[16:20])&flagMoreToCome != 0
	// The body (section kind 0) may follow document sequences (kind 1).
	for off := 20; off < len(m); {
		kind := m[off]
		off++
		if off+4 > len(m) {
			return "", false, moreToCome
		}
		size := int(int32(binary.LittleEndian.Uint32(m[off : off+4])))
		if size < 5 || off+size > len(m) {
			return "", false, moreToCome
		}
		if kind == 0 {
			body := bson.Raw(m[off : off+size])
			first, err := body.IndexErr(0)
			if err != nil {
				return "", false, moreToCome
			}
			name, _ := body.Lookup("$db").StringValueOK()
			return name, writeCommands[first.Key()], moreToCome
		}
		off += size
	}
	return "", false, moreToCome
}
