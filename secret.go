package miosa

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// secret holds the API key where no printer can reach it. The key lives in
// a closure: fmt, spew (testify's diffs), slog and encoding/json show a
// function as an address or not at all, even when they walk unexported
// fields without calling any method. The methods cover the direct case.
type secret struct{ value func() []string }

func newSecret(value string) secret {
	asHeader := []string{value}
	return secret{value: func() []string { return asHeader }}
}

// reveal returns the secret, for the one place that sends it.
func (s secret) reveal() string { return s.value()[0] }

// header returns the secret as a header value, shared by every request
// (nothing the SDK or net/http does changes a header value in place).
func (s secret) header() []string { return s.value() }

const redacted = "[redacted]"

func (secret) String() string                { return redacted }
func (secret) GoString() string              { return `"` + redacted + `"` }
func (secret) Format(f fmt.State, verb rune) { io.WriteString(f, redacted) }
func (secret) LogValue() slog.Value          { return slog.StringValue(redacted) }
func (secret) MarshalText() ([]byte, error)  { return []byte(redacted), nil }

// scrub returns text with every occurrence of the key replaced, so that a
// server echoing the key cannot put it into an error or a log line.
func (s secret) scrub(text string) string {
	key := s.reveal()
	if key == "" || !strings.Contains(text, key) {
		return text
	}
	return strings.ReplaceAll(text, key, redacted)
}

// scrubBytes is scrub for a body; it returns b itself when the key is absent.
func (s secret) scrubBytes(b []byte) []byte {
	key := s.reveal()
	if key == "" || !bytes.Contains(b, []byte(key)) {
		return b
	}
	return bytes.ReplaceAll(b, []byte(key), []byte(redacted))
}
