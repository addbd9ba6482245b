package wire

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestObject_UnwrapsEveryEnvelope(t *testing.T) {
	obj := `{"id":"a","status":"running"}`
	cases := map[string]string{
		"bare":              obj,
		"data":              `{"data":` + obj + `}`,
		"result":            `{"result":` + obj + `}`,
		"named":             `{"computer":` + obj + `}`,
		"named before data": `{"data":{"id":"wrong"},"computer":` + obj + `}`,
		"whitespace":        "\n  " + `{ "data" : ` + obj + ` }` + "\t",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Object([]byte(body), "computer")
			require.NoError(t, err)
			assert.JSONEq(t, obj, string(got))
		})
	}
}

func TestObject_WrapperThatIsNotAnObjectIsData(t *testing.T) {
	body := `{"id":"a","data":"plain string field","result":[1]}`
	got, err := Object([]byte(body))
	require.NoError(t, err)
	assert.JSONEq(t, body, string(got))
}

func TestObject_EmptyBodyIsNil(t *testing.T) {
	for _, body := range []string{"", "  \n"} {
		got, err := Object([]byte(body))
		require.NoError(t, err)
		assert.Nil(t, got)
	}
}

func TestObject_RefusesWhatIsNotAnObject(t *testing.T) {
	for _, body := range []string{`[]`, `"s"`, `1`, `true`, `null`, `nope`, `{"a":`, `{"a":1}x`} {
		_, err := Object([]byte(body))
		assert.ErrorIs(t, err, ErrNotJSON, body)
	}
}

func TestList_UnwrapsEveryEnvelope(t *testing.T) {
	list := `[{"id":"a"},{"id":"b"}]`
	meta := &Meta{Total: 7, Page: 2, PerPage: 2}
	cases := []struct {
		name     string
		body     string
		wantMeta *Meta
	}{
		{"bare", list, nil},
		{"data", `{"data":` + list + `}`, nil},
		{"items", `{"items":` + list + `}`, nil},
		{"results", `{"results":` + list + `}`, nil},
		{"computers", `{"computers":` + list + `}`, nil},
		{"templates", `{"templates":` + list + `}`, nil},
		{"builds", `{"builds":` + list + `}`, nil},
		{"sandboxes", `{"sandboxes":` + list + `}`, nil},
		{"with meta", `{"computers":` + list + `,"meta":{"total":7,"page":2,"per_page":2}}`, meta},
		{"nested in data", `{"data":{"computers":` + list + `,"meta":{"total":7,"page":2,"per_page":2}}}`, meta},
		{"meta as strings and floats", `{"data":` + list + `,"meta":{"total":"7","page":2.0,"per_page":"2"}}`, meta},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, gotMeta, err := List([]byte(tc.body), "computers", "templates", "builds", "sandboxes")
			require.NoError(t, err)
			assert.JSONEq(t, list, string(got))
			assert.Equal(t, tc.wantMeta, gotMeta)
		})
	}
}

func TestList_EmptyAndNull(t *testing.T) {
	for _, body := range []string{"", "null", `{"data":null}`, " "} {
		got, _, err := List([]byte(body))
		require.NoError(t, err, body)
		assert.Nil(t, got, body)
	}
}

func TestList_RefusesWhatHasNoList(t *testing.T) {
	for _, body := range []string{`{}`, `{"data":{}}`, `{"other":[1]}`, `"s"`, `5`, `nope`, `[1,`, `{"data":[1]`} {
		_, _, err := List([]byte(body))
		assert.ErrorIs(t, err, ErrNotJSON, body)
	}
}

func TestList_UnreadableMetaFieldsAreZero(t *testing.T) {
	_, meta, err := List([]byte(`{"data":[],"meta":{"total":-3,"page":"x","per_page":1.5}}`))
	require.NoError(t, err)
	assert.Equal(t, &Meta{}, meta)
	assert.False(t, meta.HasMore())
}

func TestMeta_HasMore(t *testing.T) {
	cases := []struct {
		meta Meta
		want bool
	}{
		{Meta{Total: 5, Page: 1, PerPage: 2}, true},
		{Meta{Total: 5, Page: 2, PerPage: 2}, true},
		{Meta{Total: 5, Page: 3, PerPage: 2}, false},
		{Meta{Total: 4, Page: 2, PerPage: 2}, false},
		{Meta{Total: 5, Page: 0, PerPage: 2}, false},
		{Meta{Total: 5, Page: 1, PerPage: 0}, false},
		{Meta{}, false},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, tc.meta.HasMore(), "%+v", tc.meta)
	}
}

func TestDescribe_NeverEchoesTheBody(t *testing.T) {
	_, err := Object([]byte(`"secret-token-value"`))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "secret-token-value")
	_, _, err = List([]byte(`secret-token-value`))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "secret-token-value")
}

func FuzzObject(f *testing.F) {
	for _, seed := range []string{
		`{"id":"a"}`, `{"data":{"id":"a"}}`, `{"result":{"id":"a"}}`, `{"computer":{"id":"a"}}`,
		`{"data":[1]}`, `[]`, `null`, ``, `{"data":{}}x`, `{"a":"\ud800"}`,
		`{"data":{"a":1},"data":{"b":2}}`, `{"\u0064ata":{"a":"}"}}`, `{"x":[{"data":{}}],"result":{"r":1}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		raw, err := Object(body, "computer")
		if err != nil {
			if raw != nil {
				t.Fatal("an error with a result")
			}
			return
		}
		if raw == nil {
			if len(bytes.TrimSpace(body)) != 0 {
				t.Fatal("nil object for a non-empty body")
			}
			return
		}
		if raw[0] != '{' || !bytes.Contains(body, raw) {
			t.Fatalf("not an object of the body: %q", raw)
		}
		if !json.Valid(body) {
			return // the caller's decoding of raw validates it
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("object does not decode: %v", err)
		}
		if want := referenceObject(body, "computer"); !bytes.Equal(raw, want) {
			t.Fatalf("got %q, encoding/json finds %q", raw, want)
		}
	})
}

func TestSoleMember_GuessesTheObjectUnderOneKey(t *testing.T) {
	obj := `{"id":"a","tags":{"k":"}"}}`
	cases := []struct {
		name, body string
		want       string // "" for no guess
	}{
		{"data", `{"data":` + obj + `}`, obj},
		{"result", `{"result":` + obj + `}`, obj},
		{"the caller's name", `{"computer":` + obj + `}`, obj},
		{"JSON whitespace", " \n{ \"data\" :\t" + obj + " \r\n}\n", obj},
		{"escaped key", `{"\u0064ata":` + obj + `}`, obj},
		// The guess is not one JSON value: decoding it fails, and the
		// caller reads the body carefully.
		{"more members after it", `{"data":{"a":1},"meta":{"b":2}}`, `{"a":1},"meta":{"b":2}`},
		{"bare object", obj, ""},
		{"other first key", `{"id":"a","data":` + obj + `}`, ""},
		{"wrapper holding a string", `{"data":"x"}`, ""},
		{"wrapper holding a list", `{"data":[{"id":"a"}]}`, ""},
		{"not JSON space before the object", "{\"data\":\u00a0" + obj + "}", ""},
		{"unclosed", `{"data":{"id":"a"}`, ""},
		{"empty", ``, ""},
		{"array", `[` + obj + `]`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := SoleMember([]byte(tc.body), "computer")
			assert.Equal(t, tc.want != "", ok)
			assert.Equal(t, tc.want, string(got))
		})
	}
}

// FuzzSoleMember checks the guess can never be wrong once decoding accepts
// it: a guess that is one JSON value is exactly what Object finds.
func FuzzSoleMember(f *testing.F) {
	for _, seed := range []string{
		`{"data":{"id":"a"}}`, `{"result":{"id":"a"}}`, `{"computer":{"id":"a"}}`, `{"data":{"a":1},"data":{"b":2}}`,
		`{"data":{"a":1},"x":{}}`, `{"\u0064ata":{"a":"}"}}`, `{ "data" : { } }`, `{"data":{}}x}`, "\u00a0{\"data\":{}}\u2028",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		guess, ok := SoleMember(body, "computer")
		if !ok || !json.Valid(guess) {
			return
		}
		if !json.Valid(bytes.TrimSpace(body)) { // Object too tolerates any surrounding space
			t.Fatalf("a valid guess %q from an invalid body", guess)
		}
		raw, err := Object(body, "computer")
		if err != nil || !bytes.Equal(raw, guess) {
			t.Fatalf("guessed %q, Object finds %q (%v)", guess, raw, err)
		}
	})
}

// referenceObject is Object written with encoding/json alone, for body
// known to be a valid JSON object: the fuzzers check the two agree.
func referenceObject(body []byte, names ...string) json.RawMessage {
	body = bytes.TrimSpace(body) // Object tolerates any surrounding space
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return nil
	}
	for _, key := range slices.Concat(names, objectWrappers) {
		if inner := top[key]; len(inner) > 0 && inner[0] == '{' {
			return inner
		}
	}
	return bytes.TrimSpace(body)
}

// referenceList is List's lookup written with encoding/json alone.
func referenceList(body []byte, names ...string) json.RawMessage {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		return body
	}
	for range 2 {
		var top map[string]json.RawMessage
		if json.Unmarshal(body, &top) != nil {
			return nil
		}
		for _, key := range slices.Concat(names, listWrappers) {
			if inner := top[key]; len(inner) > 0 && inner[0] == '[' {
				return inner
			}
			if string(top[key]) == "null" {
				return nil
			}
		}
		body = top["data"]
	}
	return nil
}

func FuzzList(f *testing.F) {
	for _, seed := range []string{
		`[{"id":"a"}]`, `{"data":[]}`, `{"computers":[],"meta":{"total":1,"page":1,"per_page":1}}`,
		`{"data":{"items":[1]}}`, `{"data":null}`, `null`, ``, `{"meta":{"total":"x"},"data":[]}`, `{"items":{}}`,
		`{"d\u0061ta":[1],"data":[2]}`, `{ "x" : "]}\"" , "items" : [ {"a":"}"} ] }`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		raw, meta, err := List(body, "computers")
		if err != nil {
			if raw != nil || meta != nil {
				t.Fatal("an error with a result")
			}
			return
		}
		if raw == nil {
			return
		}
		if raw[0] != '[' || !bytes.Contains(body, raw) {
			t.Fatalf("not an array of the body: %q", raw)
		}
		if !json.Valid(body) {
			return // the caller's decoding of raw validates it
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			t.Fatalf("array does not decode: %v", err)
		}
		if want := referenceList(body, "computers"); !bytes.Equal(raw, want) {
			t.Fatalf("got %q, encoding/json finds %q", raw, want)
		}
		if meta != nil && (meta.Total < 0 || meta.Page < 0 || meta.PerPage < 0) {
			t.Fatalf("negative meta %+v", meta)
		}
	})
}

func TestIsObject_NotesWhetherAValueIsAnObject(t *testing.T) {
	var v struct {
		A, B, C, D IsObject
	}
	require.NoError(t, json.Unmarshal([]byte(`{"A":{"x":1},"B":"{}","C":[{}],"D":null}`), &v))
	assert.Equal(t, IsObject(true), v.A)
	assert.Equal(t, IsObject(false), v.B)
	assert.Equal(t, IsObject(false), v.C)
	assert.Equal(t, IsObject(false), v.D)
}
