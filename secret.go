package miosa

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/miosa-ai/miosa-go/internal/wire"
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

// scrubBytes is scrub for a body the SDK will decode, and the one place a
// server's answer is cleaned: every text the SDK hands out (an error's
// message, an APIError field, a decoded value, Raw) is decoded from the
// bytes it returns. So besides the key as it stands, it replaces the key
// inside any JSON string that spells some of its characters as escapes
// (msk\u005f...), which decoding would turn back into the key: such a
// string is rewritten, decoded, cleaned and encoded again. It returns b
// itself when the key is in it in no spelling.
func (s secret) scrubBytes(b []byte) []byte {
	key := s.reveal()
	if key == "" {
		return b
	}
	if bytes.Contains(b, []byte(key)) {
		b = bytes.ReplaceAll(b, []byte(key), []byte(redacted))
	}
	if !mayEscapeKey(b, key) {
		return b
	}
	return scrubEscapedStrings(b, key)
}

// mayEscapeKey reports whether b holds an escape that decodes into a
// character a key can hold: \uXXXX, and \/ \\ \" for a key holding those
// characters. The other escapes stand for whitespace and control
// characters, which no key has, and output lines full of \t and \" are
// common: one pass over b's backslashes keeps them cheap.
func mayEscapeKey(b []byte, key string) bool {
	special := strings.ContainsAny(key, `/\"`)
	for i := bytes.IndexByte(b, '\\'); i >= 0 && i+1 < len(b); {
		switch b[i+1] {
		case 'u':
			return true
		case '/', '\\', '"':
			if special {
				return true
			}
		}
		next := bytes.IndexByte(b[i+2:], '\\')
		if next < 0 {
			break
		}
		i += 2 + next
	}
	return false
}

// scrubEscapedStrings rewrites every JSON string in b that holds an escape
// and decodes to text containing key, as the encoding of that text with key
// replaced. Strings without a backslash, and text outside strings, are
// left as they are.
func scrubEscapedStrings(b []byte, key string) []byte {
	var out []byte // nil until a string is rewritten
	copied := 0    // b[:copied] is in out
	for i := 0; i < len(b); {
		open := bytes.IndexByte(b[i:], '"')
		if open < 0 {
			break
		}
		start := i + open
		end := min(wire.StringEnd(b, start), len(b))
		i = end
		if bytes.IndexByte(b[start:end], '\\') < 0 {
			continue
		}
		var text string
		if json.Unmarshal(b[start:end], &text) != nil || !strings.Contains(text, key) {
			continue
		}
		clean, _ := json.Marshal(strings.ReplaceAll(text, key, redacted)) // a string always encodes
		out = append(append(out, b[copied:start]...), clean...)
		copied = end
	}
	if out == nil {
		return b
	}
	return append(out, b[copied:]...)
}
