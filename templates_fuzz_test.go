package miosa_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
)

var templateFuzzSeeds = []string{
	tplObject,
	buildObject,
	`{"valid":false,"errors":["runtime is required"]}`,
	`{"valid":true,"build_spec":{"runtime":"node"}}`,
	`{"errors":[{"message":"m"},{"detail":"d"},{"x":1},null,"",7]}`,
	`{"errors":{"runtime":["a",{"message":"b"}],"v":"c"}}`,
	`{"errors":"one"}`,
	`{"runtime":"node","version":"20"}`,
	`{"aliases":[1,"a",null,{"name":"x"}],"created_at":1779098400.5}`,
	`{"error":{"message":"boom"},"status":"FAILED"}`,
	`{"data":{"valid":false,"errors":["e"]}}`,
	`[]`, `null`, `""`, `{}`,
}

// FuzzTemplateDecoding checks that no server answer makes the template
// types panic, that whatever decodes keeps the exact bytes in Raw, and that
// a verdict's Valid follows the server's "valid" field or, without one, the
// absence of errors.
func FuzzTemplateDecoding(f *testing.F) {
	for _, seed := range templateFuzzSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var verdict miosa.ValidationResult
		if json.Unmarshal(data, &verdict) == nil {
			require.Equal(t, string(bytes.TrimSpace(data)), string(verdict.Raw), "Raw keeps the input")
			for _, msg := range verdict.Errors {
				require.NotEmpty(t, msg)
			}
			var top struct {
				Valid *bool `json:"valid"`
			}
			if json.Unmarshal(data, &top) == nil {
				if top.Valid != nil {
					require.Equal(t, *top.Valid, verdict.Valid)
				} else {
					require.Equal(t, len(verdict.Errors) == 0, verdict.Valid)
				}
			}
		}

		var build miosa.TemplateBuild
		if json.Unmarshal(data, &build) == nil {
			require.Equal(t, string(bytes.TrimSpace(data)), string(build.Raw))
			require.False(t, build.Succeeded() && !build.Finished(), "a succeeded build is finished")
		}

		var tpl miosa.SandboxTemplate
		if json.Unmarshal(data, &tpl) == nil {
			require.Equal(t, string(bytes.TrimSpace(data)), string(tpl.Raw))
			for _, alias := range tpl.Aliases {
				require.NotEmpty(t, alias)
			}
		}
	})
}

// FuzzValidateAnswer checks Validate against arbitrary 200 and 422 bodies:
// it returns a verdict or an error, never both or neither, and a verdict
// drawn from a 422 is always invalid and says why.
func FuzzValidateAnswer(f *testing.F) {
	for _, seed := range templateFuzzSeeds {
		f.Add(200, []byte(seed))
		f.Add(422, []byte(seed))
	}
	f.Add(422, []byte(`{"error":"Unprocessable"}`))
	f.Add(200, []byte(`not json`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status != 200 {
			status = 422
		}
		fake := newScripted(reply{status, string(body)})
		client, err := miosa.NewClient(scriptedKey,
			miosa.WithBaseURL("http://127.0.0.1"),
			miosa.WithHTTPClient(miosa.InMemory(fake)))
		require.NoError(t, err)

		verdict, err := client.SandboxTemplates.Validate(t.Context(), miosa.BuildSpec{"runtime": "node"})
		require.True(t, (verdict == nil) != (err == nil), "verdict %v, error %v", verdict, err)
		if verdict != nil && status == 422 {
			require.False(t, verdict.Valid)
			require.NotEmpty(t, verdict.Errors)
		}
		if err != nil && status == 422 {
			require.ErrorIs(t, err, miosa.ErrValidation)
		}
	})
}
