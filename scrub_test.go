package miosa

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// escapeEvery writes s as the body of a JSON string whose every
// character at an index in which is a \uXXXX escape (upper or lower case
// hex, by index), the rest as they are.
func escapeEvery(s string, which func(i int) bool) string {
	var b strings.Builder
	for i, r := range s {
		if which(i) {
			format := `\u%04x`
			if i%2 == 1 {
				format = `\u%04X`
			}
			fmt.Fprintf(&b, format, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// keySpellings are ways a server can echo the key inside a JSON string
// that decoding turns back into the key.
var keySpellings = map[string]string{
	"as it is":                 testKey,
	"the underscore escaped":   strings.Replace(testKey, "_", `\u005f`, 1),
	"every character escaped":  escapeEvery(testKey, func(int) bool { return true }),
	"every other one, in caps": escapeEvery(testKey, func(i int) bool { return i%2 == 1 }),
	"the last one escaped":     escapeEvery(testKey, func(i int) bool { return i == len(testKey)-1 }),
}

func TestScrubBytes_NoSpellingOfTheKeyDecodesBack(t *testing.T) {
	s := newSecret(testKey)
	for name, spelled := range keySpellings {
		t.Run(name, func(t *testing.T) {
			body := []byte(`{"a":"x ` + spelled + ` y \"quoted\"","` + spelled + `":["` + spelled + `", 1, null],"b":"\n\u00e9"}`)
			clean := s.scrubBytes(body)
			var decoded map[string]any
			require.NoError(t, json.Unmarshal(clean, &decoded), "the body stays valid JSON: %s", clean)
			text := fmt.Sprint(decoded)
			assert.NotContains(t, text, testKey)
			assert.Equal(t, "x "+redacted+` y "quoted"`, decoded["a"], "the rest of the string is kept")
			assert.Equal(t, []any{redacted, 1.0, nil}, decoded[redacted], "keys of objects too")
			assert.Equal(t, "\né", decoded["b"], "strings without the key are left as they were")
		})
	}
}

func TestScrubBytes_LeavesABodyWithoutTheKeyAsItIs(t *testing.T) {
	s := newSecret(testKey)
	for _, body := range []string{
		`{"a":"msk\u005fsomething else","b":"\\u005f","c":"unterminated \u005f`,
		`plain text with a \ backslash`,
		`{"a":"no escapes at all"}`,
		`"\`,
	} {
		got := s.scrubBytes([]byte(body))
		assert.Equal(t, body, string(got))
	}
}

// Every text the SDK hands out is decoded from the one cleaned body: an
// error's message and fields, a decoded value and its Raw, an error that
// quotes a value it could not decode.
func TestKey_EchoedWithJSONEscapesIsScrubbedFromDecodedTexts(t *testing.T) {
	for name, spelled := range keySpellings {
		t.Run(name, func(t *testing.T) {
			_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				switch {
				case strings.HasSuffix(r.URL.Path, "/files/export"):
					writeJSON(w, 200, `{"data":{"url":"https://files.test/x?token=`+spelled+`","expires_at":null}}`)
				case strings.HasSuffix(r.URL.Path, "/cmp_bad"):
					writeJSON(w, 200, `{"id":"cmp_bad","created_at":"`+spelled+`"}`)
				case strings.HasSuffix(r.URL.Path, "/cmp_1"):
					writeJSON(w, 200, `{"id":"cmp_1","name":"`+spelled+`","metadata":{"`+spelled+`":"`+spelled+`"}}`)
				case strings.HasSuffix(r.URL.Path, "/exec"):
					writeJSON(w, 200, `{"stdout":"`+spelled+`\n","output":"`+spelled+`"}`)
				default:
					writeJSON(w, 400, `{"error":{"code":"BAD_`+spelled+`","message":"you sent `+spelled+`","details":{"k":"`+spelled+`"}}}`)
				}
			})
			c := newTestClient(t, base, WithMaxRetries(0))
			ctx := t.Context()

			export, err := c.Files.Export(ctx, "cmp_1", "/f")
			require.NoError(t, err)
			assert.Equal(t, "https://files.test/x?token="+redacted, export.URL)
			assert.NotContains(t, string(export.Raw), testKey)

			computer, err := c.Computers.Get(ctx, "cmp_1")
			require.NoError(t, err)
			assert.Equal(t, redacted, computer.Name)
			assert.Equal(t, map[string]any{redacted: redacted}, computer.Metadata)

			res, err := c.Exec.Run(ctx, "cmp_1", ExecParams{Command: "env"})
			require.NoError(t, err)
			assert.Equal(t, redacted+"\n", res.Stdout)
			assert.NotContains(t, res.Output+string(res.Raw), testKey)

			_, decodeErr := c.Computers.Get(ctx, "cmp_bad")
			require.Error(t, decodeErr)
			assert.NotContains(t, decodeErr.Error(), testKey)

			_, err = c.Computers.List(ctx, ComputerListParams{})
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			fields, marshalErr := json.Marshal(apiErr)
			require.NoError(t, marshalErr)
			for field, text := range map[string]string{
				"Error()": err.Error(), "Message": apiErr.Message, "Code": apiErr.Code,
				"Body": string(apiErr.Body), "Details": string(apiErr.Details), "all fields": string(fields),
			} {
				assert.NotContains(t, text, testKey, field)
			}
			assert.Equal(t, "you sent "+redacted, apiErr.Message)
		})
	}
}

// FuzzScrubBytes checks that whatever a body holds, no string in it that
// JSON decodes after scrubbing holds the key, and a body without the key in
// any spelling comes back unchanged.
func FuzzScrubBytes(f *testing.F) {
	for _, spelled := range keySpellings {
		f.Add(`{"a":"` + spelled + `"}`)
	}
	f.Add(`{"a":"\u006d`)
	f.Add(`["\\", "\"", "\u00e9msk_u_test"]`)
	s := newSecret(testKey)
	f.Fuzz(func(t *testing.T, body string) {
		clean := s.scrubBytes([]byte(body))
		if !utf8.Valid(clean) && utf8.ValidString(body) {
			t.Fatalf("scrubbing made valid UTF-8 invalid: %q", clean)
		}
		var v any
		if json.Unmarshal(clean, &v) == nil {
			out, _ := json.Marshal(v)
			if strings.Contains(string(out), testKey) || strings.Contains(fmt.Sprint(v), testKey) {
				t.Fatalf("the key decodes back from %q", clean)
			}
		}
		assert.NotContains(t, string(clean), testKey)
	})
}

func TestScrubBytes_AKeyWithSlashQuoteOrBackslashIsFoundBehindThoseEscapes(t *testing.T) {
	key := `msk_a/b"c\d`
	s := newSecret(key)
	for _, body := range []string{
		`{"m":"x msk_a\/b\"c\\d y"}`,
		`{"m":"msk_a/b\"c\\d"}`,
	} {
		var v map[string]string
		require.NoError(t, json.Unmarshal(s.scrubBytes([]byte(body)), &v), body)
		assert.NotContains(t, v["m"], key, body)
		assert.Contains(t, v["m"], redacted, body)
	}
}

func TestScrubBytes_EscapesThatSpellNoKeyCharacterLeaveTheBodyAsItIs(t *testing.T) {
	s := newSecret(testKey)
	body := []byte(`{"line":"\tcol\t\"quoted\"\n"}`)
	got := s.scrubBytes(body)
	assert.Equal(t, string(body), string(got))
	assert.Same(t, &body[0], &got[0], "no copy for a body the key is not in")
}
