package bench

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/twiliosig"
)

// signer makes signed Programmable Messaging inbound webhooks, each with a
// fresh MessageSid, the way Twilio would send them.
type signer struct {
	url   string
	token string
	run   uint32
	next  atomic.Uint64
}

// form is a 560-byte-class inbound SMS, as in Twilio's real captures; the
// SID fields are filled per request.
func (s *signer) params(sid string) url.Values {
	return url.Values{
		"ToCountry": {"US"}, "ToState": {""}, "SmsMessageSid": {sid}, "NumMedia": {"0"}, "ToCity": {""}, "FromZip": {"98106"},
		"SmsSid": {sid}, "FromState": {"WA"}, "SmsStatus": {"received"}, "FromCity": {"SEATTLE"},
		"Body": {"Hello, my order has not arrived yet, can you check where it is? Thanks"}, "FromCountry": {"US"},
		"To": {BenchNumber}, "MessagingServiceSid": {"MG0123456789abcdef0123456789abcdef"}, "ToZip": {""}, "NumSegments": {"1"},
		"MessageSid": {sid}, "AccountSid": {BenchAccount}, "From": {"+12533243071"}, "ApiVersion": {"2010-04-01"},
	}
}

// worker holds one goroutine's reusable signing state.
type worker struct {
	s   *signer
	mac hash.Hash
	sum []byte
	sid [34]byte
}

func (s *signer) worker() *worker {
	return &worker{s: s, mac: hmac.New(sha1.New, []byte(s.token)), sum: make([]byte, 0, sha1.Size)}
}

// request returns a body and its X-Twilio-Signature.
func (w *worker) request() (string, string) {
	n := w.s.next.Add(1)
	var raw [16]byte
	for i := range 4 {
		raw[i] = byte(w.s.run >> (8 * i))
	}
	for i := range 8 {
		raw[8+i] = byte(n >> (8 * i))
	}
	copy(w.sid[:2], "SM")
	hex.Encode(w.sid[2:], raw[:])
	sid := string(w.sid[:])
	p := w.s.params(sid)
	w.mac.Reset()
	w.mac.Write([]byte(w.s.url))
	w.mac.Write(twiliosig.Canonical(p))
	w.sum = w.mac.Sum(w.sum[:0])
	return p.Encode(), base64.StdEncoding.EncodeToString(w.sum)
}

// result of one load run.
type result struct {
	requests  int
	errors    int
	elapsed   time.Duration
	latencies []time.Duration
	firstErr  string
	// late counts fixed-rate sends that left more than 5 ms after they
	// were due: the generator fell behind (CPU contention, or all its
	// workers waiting for answers).
	late int
	// cpu is the process's CPU time (user+system) during the run: client,
	// servers and the embedded NATS server together.
	cpu time.Duration
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPerRequest is the CPU the whole pipeline spent per answered request.
func (r result) cpuPerRequest() time.Duration {
	if r.requests == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.requests)
}

// merge adds b's requests to r; latencies stay sorted.
func (r result) merge(b result) result {
	r.requests += b.requests
	r.errors += b.errors
	r.elapsed += b.elapsed
	r.cpu += b.cpu
	r.latencies = append(r.latencies, b.latencies...)
	slices.Sort(r.latencies)
	if r.firstErr == "" {
		r.firstErr = b.firstErr
	}
	return r
}

func (r result) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies)-1) * p)
	return r.latencies[i]
}

func newClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns * 2,
			MaxIdleConnsPerHost: conns * 2,
			MaxConnsPerHost:     conns * 2,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		Timeout: 30 * time.Second,
	}
}

// send posts one webhook and reports whether it got a 2xx.
func send(ctx context.Context, c *http.Client, target, body, sig string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sig)
	res, err := c.Do(req)
	if err != nil {
		return false, err.Error()
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return false, res.Status
	}
	return true, ""
}

// closedLoop runs conc workers sending back to back for d.
func closedLoop(ctx context.Context, c *http.Client, s *signer, conc int, d time.Duration) result {
	var (
		mu  sync.Mutex
		all result
		wg  sync.WaitGroup
	)
	cpu0 := processCPU()
	start := time.Now()
	stop := start.Add(d)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := s.worker()
			var mine result
			mine.latencies = make([]time.Duration, 0, 4096)
			for time.Now().Before(stop) && ctx.Err() == nil {
				body, sig := w.request()
				t0 := time.Now()
				ok, why := send(ctx, c, s.url, body, sig)
				lat := time.Since(t0)
				if !ok {
					mine.errors++
					if mine.firstErr == "" {
						mine.firstErr = why
					}
					continue
				}
				mine.requests++
				mine.latencies = append(mine.latencies, lat)
			}
			mu.Lock()
			all.requests += mine.requests
			all.errors += mine.errors
			all.latencies = append(all.latencies, mine.latencies...)
			if all.firstErr == "" {
				all.firstErr = mine.firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	all.elapsed = time.Since(start)
	all.cpu = processCPU() - cpu0
	slices.Sort(all.latencies)
	return all
}

// fixedRate sends rate requests per second for d, open loop: 256 workers
// take the due times in turn, so a slow answer never delays the next send
// (no coordinated omission) unless all of them are waiting; sends that
// leave more than 5 ms late are counted. Latency runs from the send: Go's timers wake up to a
// millisecond late, which is the generator's error, not the server's.
func fixedRate(ctx context.Context, c *http.Client, s *signer, rate int, d time.Duration) result {
	total := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	due := make(chan time.Time, total)
	var (
		mu  sync.Mutex
		all result
		wg  sync.WaitGroup
	)
	const workers = 256
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := s.worker()
			var mine result
			for at := range due {
				if wait := time.Until(at); wait > 0 {
					time.Sleep(wait)
				}
				body, sig := w.request()
				t0 := time.Now()
				if t0.Sub(at) > 5*time.Millisecond {
					mine.late++
				}
				ok, why := send(ctx, c, s.url, body, sig)
				lat := time.Since(t0)
				if !ok {
					mine.errors++
					if mine.firstErr == "" {
						mine.firstErr = why
					}
					continue
				}
				mine.requests++
				mine.latencies = append(mine.latencies, lat)
			}
			mu.Lock()
			all.requests += mine.requests
			all.errors += mine.errors
			all.late += mine.late
			all.latencies = append(all.latencies, mine.latencies...)
			if all.firstErr == "" {
				all.firstErr = mine.firstErr
			}
			mu.Unlock()
		}()
	}
	cpu0 := processCPU()
	start := time.Now().Add(10 * time.Millisecond)
	for i := range total {
		due <- start.Add(time.Duration(i) * interval)
	}
	close(due)
	wg.Wait()
	all.elapsed = time.Since(start)
	all.cpu = processCPU() - cpu0
	slices.Sort(all.latencies)
	return all
}
