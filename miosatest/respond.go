package miosatest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "INTERNAL", "encoding the answer: "+err.Error())
		return
	}
	writeRaw(w, status, body)
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeData answers {"data": v}, the envelope the fake uses for objects.
func writeData(w http.ResponseWriter, status int, v any) {
	writeJSON(w, status, map[string]any{"data": v})
}

// listMeta is the pagination block beside a list.
type listMeta struct {
	Total   int `json:"total"`
	Page    int `json:"page"`
	PerPage int `json:"per_page"`
}

// writeList answers {"data": items, "meta": meta}; meta is left out when nil.
func writeList[T any](w http.ResponseWriter, items []T, meta *listMeta) {
	if items == nil {
		items = []T{}
	}
	body := map[string]any{"data": items}
	if meta != nil {
		body["meta"] = meta
	}
	writeJSON(w, http.StatusOK, body)
}

// errorBody is the error envelope, {"error": {"code": ..., "message": ...}},
// with the message at the top level too: some clients (the official Go SDK)
// read only a top-level "message", and no reader minds it.
func errorBody(code, message string) []byte {
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": message}, "message": message})
	return body
}

// retryableReply is the newer servers' canonical refusal of a call that did
// nothing and may be sent again after wait (at least 1 ms): the error
// envelope with details, "retryable": true and "retry_after_ms", the
// message also at the top level.
func retryableReply(status int, code, message string, details map[string]any, wait time.Duration) reply {
	wait = max(wait, time.Millisecond)
	return reply{status: status, raw: map[string]any{"error": map[string]any{
		"code":           code,
		"message":        message,
		"details":        details,
		"retryable":      true,
		"retry_after_ms": int64((wait + time.Millisecond - 1) / time.Millisecond), // rounded up
	}, "message": message}}
}

// writeError answers with the nested error envelope the API uses.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeRaw(w, status, errorBody(code, message))
}

// notFound answers 404 NOT_FOUND naming what was looked for.
func notFound(w http.ResponseWriter, what, id string) {
	writeError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("%s %q not found", what, id))
}

// invalid answers 422 INVALID, the API's validation failure.
func invalid(w http.ResponseWriter, format string, args ...any) {
	writeError(w, http.StatusUnprocessableEntity, "INVALID", fmt.Sprintf(format, args...))
}

// decodeFields reads a JSON object body into its top-level fields. An empty
// body is an empty object. It answers 400 itself and reports false when the
// body is not a JSON object.
func decodeFields(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, bool) {
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(r.Body)
	body := bytes.TrimSpace(buf.Bytes())
	fields := map[string]json.RawMessage{}
	if len(body) == 0 {
		return fields, true
	}
	if body[0] != '{' || json.Unmarshal(body, &fields) != nil {
		writeError(w, http.StatusBadRequest, "INVALID", "request body must be a JSON object")
		return nil, false
	}
	return fields, true
}

// knownFields is decodeFields for a body whose keys must all be in known:
// any other key is refused with 422 naming the accepted ones, so that no
// field a client sends is silently dropped.
func knownFields(w http.ResponseWriter, r *http.Request, known []string) (map[string]json.RawMessage, bool) {
	fields, ok := decodeFields(w, r)
	if !ok {
		return nil, false
	}
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		if !slices.Contains(known, key) {
			invalid(w, "unknown field %q; accepted fields are %v", key, known)
			return nil, false
		}
	}
	return fields, true
}

// field decodes fields[name] into dst when present and not null. It answers
// 422 itself and reports false when the value has the wrong type.
func field(w http.ResponseWriter, fields map[string]json.RawMessage, name string, dst any, want string) (present, ok bool) {
	raw, found := fields[name]
	if !found || string(bytes.TrimSpace(raw)) == "null" {
		return false, true
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		invalid(w, "%s must be %s", name, want)
		return true, false
	}
	return true, true
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// nullableTime is a timestamp that is null until set.
func nullableTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// bodyField is one field of a request's body: where it is decoded to,
// whether it is required, and what it must be.
type bodyField struct {
	name     string
	dst      any
	required bool
	want     string
}

// readFields decodes r's JSON body into fields, answering 422 itself and
// reporting false for a field it does not know, one of the wrong type, or
// a required one missing.
func readFields(w http.ResponseWriter, r *http.Request, fields []bodyField) bool {
	known := make([]string, len(fields))
	for i, f := range fields {
		known[i] = f.name
	}
	body, ok := knownFields(w, r, known)
	if !ok {
		return false
	}
	for _, f := range fields {
		present, ok := field(w, body, f.name, f.dst, f.want)
		if !ok {
			return false
		}
		if f.required && !present {
			invalid(w, "%s is required", f.name)
			return false
		}
	}
	return true
}
