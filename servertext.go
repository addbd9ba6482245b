package miosa

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds on text that comes from the server and ends up in errors and logs.
const (
	maxErrorMessage = 512 // an error message
	maxErrorCode    = 64  // an error code
	maxRequestID    = 128 // an X-Request-ID
	// maxTransportError caps the text of an error from the HTTP client,
	// which may quote what the server sent.
	maxTransportError = 1024
	// maxMessages and maxMessageDepth bound how much of a list of messages
	// is read, and how deeply nested objects are looked into, so a hostile
	// answer cannot make decoding cost more than its size.
	maxMessages     = 100
	maxMessageDepth = 3
)

// jsonString returns raw as a string if it is a JSON string, else "".
func jsonString(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// jsonNumber reads a number of seconds (or milliseconds) sent as a JSON
// number or as a string holding one. Numbers beyond float64's range read as
// infinite rather than as nothing.
func jsonNumber(raw json.RawMessage) (float64, bool) {
	text := strings.TrimSpace(string(raw))
	if s := jsonString(raw); s != "" {
		text = strings.TrimSpace(s)
	}
	if text == "" {
		return 0, false
	}
	n, err := strconv.ParseFloat(text, 64)
	if err != nil && !(errors.Is(err, strconv.ErrRange) && math.IsInf(n, 0)) {
		return 0, false
	}
	return n, true
}

// isJSONNull reports whether raw holds no value: it is empty (the field
// was absent) or null.
func isJSONNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// isJSONTrue reports whether raw is the JSON literal true; a string, a
// number or an object saying so is not.
func isJSONTrue(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("true"))
}

// isJSONFalse reports whether raw is the JSON literal false; a string, a
// number or an object saying so is not.
func isJSONFalse(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("false"))
}

// isJSONObject reports whether raw, space around it aside, is a JSON
// object. It looks at the first byte only: the decoding that follows
// checks the rest.
func isJSONObject(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// messagesOf reads a list of messages in any of the shapes servers use: a
// string, a list of strings or of objects carrying a "message" (or
// "detail"), or an object mapping a field to its messages (given as
// "field: message"). A value it cannot read as text is kept as its compact
// JSON, so no reported problem is lost. At most maxMessages are read, and
// objects are looked into at most maxMessageDepth levels deep.
func messagesOf(raw json.RawMessage) []string {
	var msgs []string
	collectMessages(raw, "", maxMessageDepth, &msgs)
	return msgs
}

func collectMessages(raw json.RawMessage, prefix string, depth int, msgs *[]string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || len(*msgs) >= maxMessages {
		return
	}
	add := func(s string) {
		if s != "" && len(*msgs) < maxMessages {
			*msgs = append(*msgs, capText(prefix+s, maxErrorMessage))
		}
	}
	switch raw[0] {
	case '"':
		add(strings.TrimSpace(jsonString(raw)))
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return
		}
		for _, item := range items[:min(len(items), maxMessages)] {
			add(messageOf(item))
		}
	case '{':
		if s := objectMessage(raw); s != "" {
			add(s)
			return
		}
		var fields map[string]json.RawMessage
		if depth == 0 || json.Unmarshal(raw, &fields) != nil {
			add(compactJSON(raw))
			return
		}
		for _, field := range slices.Sorted(maps.Keys(fields)) {
			collectMessages(fields[field], prefix+capText(field, maxErrorCode)+": ", depth-1, msgs)
		}
	}
}

// messageOf returns one value as text: a string as it is, an object's
// "message" (or "detail"), and any other non-null value as its compact JSON.
func messageOf(raw json.RawMessage) string {
	if isJSONNull(raw) {
		return ""
	}
	raw = bytes.TrimSpace(raw)
	if raw[0] == '"' {
		return strings.TrimSpace(jsonString(raw))
	}
	if s := objectMessage(raw); s != "" {
		return s
	}
	return compactJSON(raw)
}

// objectMessage returns the "message" (or else "detail") string of a JSON
// object, or "" when raw is not an object carrying one.
func objectMessage(raw json.RawMessage) string {
	if !isJSONObject(raw) {
		return ""
	}
	var obj struct {
		Message json.RawMessage `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(raw, &obj) != nil {
		return ""
	}
	if s := strings.TrimSpace(jsonString(obj.Message)); s != "" {
		return s
	}
	return strings.TrimSpace(jsonString(obj.Detail))
}

// compactJSON returns raw without insignificant space, capped.
func compactJSON(raw json.RawMessage) string {
	var compact bytes.Buffer
	if json.Compact(&compact, raw) != nil {
		return ""
	}
	return capText(compact.String(), maxErrorMessage)
}

// capText makes server text safe to print: invalid bytes become U+FFFD,
// characters that break or reorder a line (control characters, C1 controls
// such as U+0085, line and paragraph separators, bidirectional overrides)
// become spaces, and the result is cut to at most n bytes without splitting
// a UTF-8 sequence. So an error message is one line of valid text of bounded
// size: a server cannot forge log lines or disguise text through it. It
// replaces before cutting (replacing after could triple the size).
func capText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if breaksLine(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// breaksLine reports whether r could break a log line or reorder how the
// text around it is shown.
func breaksLine(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp, unicode.Bidi_Control)
}
