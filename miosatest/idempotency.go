package miosatest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// idempotencyStore remembers, per Idempotency-Key, the request it first
// came with and the answer it got, as a careful server does: the same key
// with the same request replays the answer; the same key with a different
// request is refused.
type idempotencyStore struct {
	mu   sync.Mutex
	keys map[string]*keyedCall
}

// keyedCall is the first request seen with a key. done is closed once its
// answer is recorded; a concurrent request with the key waits for it.
type keyedCall struct {
	fingerprint [32]byte
	method      string
	path        string
	done        chan struct{}
	status      int
	header      http.Header
	body        []byte
}

func (s *idempotencyStore) init() { s.keys = map[string]*keyedCall{} }

// fingerprint identifies a request by method, path and body; a JSON body is
// compared by value, so key order and spacing do not matter.
func fingerprint(method, path string, body []byte) [32]byte {
	canonical := bytes.TrimSpace(body)
	var v any
	if len(canonical) > 0 && json.Unmarshal(canonical, &v) == nil {
		canonical, _ = json.Marshal(v)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", method, path)
	h.Write(canonical)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// idempotent wraps a create-type handler. Without an Idempotency-Key the
// request is served as it is. With one, the first request is served and its
// answer recorded; a repeat with the same request gets that answer again
// (one resource, however many retries), marked Idempotent-Replayed: true; a
// repeat with a different request gets 422 IDEMPOTENCY_KEY_REUSED. A 4xx
// answer is not kept (a refused call did nothing): the next request with
// the key is served afresh, as careful servers do.
func (e *engine) idempotent(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if key == "" {
			h(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		fp := fingerprint(r.Method, r.URL.Path, body)

		e.idem.mu.Lock()
		first, seen := e.idem.keys[key]
		if !seen {
			first = &keyedCall{fingerprint: fp, method: r.Method, path: r.URL.Path, done: make(chan struct{})}
			e.idem.keys[key] = first
		}
		e.idem.mu.Unlock()

		if seen {
			if first.fingerprint != fp {
				writeError(w, http.StatusUnprocessableEntity, "IDEMPOTENCY_KEY_REUSED", fmt.Sprintf(
					"Idempotency-Key %q was already used for a different request (%s %s); "+
						"send a new key for a new request", key, first.method, e.relative(first.path)))
				return
			}
			select {
			case <-first.done:
			case <-r.Context().Done():
				return
			case <-e.closing:
				dropConnection(w)
				return
			}
			replay(w, first)
			return
		}

		rec := httptest.NewRecorder()
		h(rec, r)
		first.status, first.header, first.body = rec.Code, rec.Header().Clone(), rec.Body.Bytes()
		if first.status >= 400 && first.status <= 499 {
			// A refusal did nothing: the key is free again, so the call
			// can be sent once more and done (a snapshot not ready yet).
			e.idem.mu.Lock()
			delete(e.idem.keys, key)
			e.idem.mu.Unlock()
		}
		close(first.done)
		for k, v := range first.header {
			w.Header()[k] = v
		}
		w.WriteHeader(first.status)
		_, _ = w.Write(first.body)
	}
}

func replay(w http.ResponseWriter, c *keyedCall) {
	for k, v := range c.header {
		w.Header()[k] = append([]string(nil), v...)
	}
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(c.status)
	_, _ = w.Write(c.body)
}

// relative returns an absolute request path relative to the base path.
func (e *engine) relative(path string) string {
	rel, _ := strings.CutPrefix(path, e.cfg.BasePath)
	return rel
}
