package miosa

import "net/http"

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
