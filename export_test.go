package miosa

import (
	"crypto/tls"
	"net/http"
)

// The external tests (package miosa_test) record requests, and serve them
// in memory, with the same test servers as this package's own tests.
type (
	Recorder        = recorder
	RecordedRequest = recordedRequest
)

// NewRecorder returns a recorder that answers with respond.
func NewRecorder(respond func(w http.ResponseWriter, r *http.Request, n int)) *Recorder {
	return &recorder{respond: respond}
}

// Requests returns what rec recorded so far, oldest first.
func (rec *recorder) Requests() []recordedRequest { return rec.requests() }

// InMemory returns a client that serves requests with h without any
// network, inside a synctest bubble too.
var InMemory = inMemory

// DrainTimeout is how long a refused answer's body is read at most.
const DrainTimeout = drainTimeout

// DefaultHTTPClient returns the SDK's default HTTP client (what NewClient
// uses without WithHTTPClient), trusting what tlsConfig trusts, so that a
// test can measure the defaults against a TLS test server.
func DefaultHTTPClient(tlsConfig *tls.Config) *http.Client {
	return &http.Client{Transport: newDefaultTransport(tlsConfig)}
}
