package miosa

import (
	"reflect"
	"testing"

	"github.com/miosa-ai/miosa-go/internal/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDecodeObject_EveryTypeRefusesAWrongGuess guards decodeGuess's first guess:
// it is safe only because decoding refuses an input that is not one JSON
// value. A type whose decoding skipped validation would take a wrong guess
// (the first of several members) for the answer.
func TestDecodeObject_EveryTypeRefusesAWrongGuess(t *testing.T) {
	// object satisfies every type's required fields.
	const object = `{"id":"a","token":"t","url":"https://u.test","ready":true,"exit_code":0}`
	const wrongGuess = object + `,"meta":{"id":"b"}`
	decoders := map[string]func([]byte) error{
		"Computer":         func(b []byte) error { _, err := decodeObject[Computer](b); return err },
		"Sandbox":          func(b []byte) error { _, err := decodeObject[Sandbox](b); return err },
		"ExecResult":       func(b []byte) error { _, err := decodeObject[ExecResult](b); return err },
		"FileExport":       func(b []byte) error { _, err := decodeObject[FileExport](b); return err },
		"PreviewToken":     func(b []byte) error { _, err := decodeObject[PreviewToken](b); return err },
		"Readiness":        func(b []byte) error { _, err := decodeObject[Readiness](b); return err },
		"SandboxTemplate":  func(b []byte) error { _, err := decodeObject[SandboxTemplate](b); return err },
		"ValidationResult": func(b []byte) error { _, err := decodeObject[ValidationResult](b); return err },
		"TemplateBuild":    func(b []byte) error { _, err := decodeObject[TemplateBuild](b); return err },
		"Snapshot":         func(b []byte) error { _, err := decodeObject[Snapshot](b); return err },
	}
	for name, decode := range decoders {
		t.Run(name, func(t *testing.T) {
			assert.NoError(t, decode([]byte(object)), "the object alone decodes")
			assert.Error(t, decode([]byte(wrongGuess)))
		})
	}
}

// FuzzDecodeGuess checks that a guess, whenever it is taken, is what reading
// the body carefully (finding the object, then decoding it) gives.
func FuzzDecodeGuess(f *testing.F) {
	for _, seed := range []string{
		computerJSON, `{"data":` + computerJSON + `}`, `{"sandbox":` + computerJSON + `}`,
		`{"id":"a","data":{"id":"b"}}`, `{"id":"a","DATA":{"id":"b"}}`, `{"id":"a","Sandbox":{}}`,
		`{"id":"a","data":"x"}`, `{"data":{"id":"a"},"data":"x"}`, `{"\u0064ata":{"id":"b"},"id":"a"}`,
		`{"data":{"id":"a"}} `, ` {"id":"a"}`, `{"id":"a","result":[{}]}`,
		// The native sandbox routes' naming, alone and beside the other.
		`{"data":{"id":"sb_1","state":"provisioning","template_id":"miosa-sandbox","timeout_sec":300}}`,
		`{"id":"sb_1","state":"paused","template_id":"node-22"}`,
		`{"id":"sb_1","status":"running","state":"paused","template_type":"a","template_id":"b"}`,
		`{"id":"a","state":"running","sandbox":{"id":"b","state":"paused"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, wrappers := range [][]string{computerEnvelopeKeys, {"sandbox", "computer"}} {
			guessed, ok := decodeGuess[Computer](body, wrappers)
			if !ok {
				continue
			}
			raw, err := wire.Object(body, wrappers...)
			if err != nil {
				t.Fatalf("guessed %q, but the body does not hold an object: %v", guessed.Raw, err)
			}
			careful, err := decodeObject[Computer](raw)
			if err != nil {
				t.Fatalf("guessed %q, but its object does not decode: %v", guessed.Raw, err)
			}
			if !reflect.DeepEqual(guessed, careful) {
				t.Fatalf("guessed %+v, the careful path gives %+v", guessed, careful)
			}
		}
	})
}

func TestComputerDecodeBare_OnlyForTheKeysItNotes(t *testing.T) {
	var c Computer
	assert.True(t, c.decodeBare([]byte(computerJSON), computerEnvelopeKeys))
	assert.Equal(t, "cmp_1", c.ID)
	assert.False(t, new(Computer).decodeBare([]byte(computerJSON), []string{"machine"}),
		"a call naming a key computerWire does not note cannot take a bare guess")
}

func TestComputer_NativeNamingsFillStatusAndTemplateWhenAbsent(t *testing.T) {
	for _, tc := range []struct {
		name, object string
		status       ComputerStatus
		templateType string
	}{
		{"native", `{"id":"sb_1","state":"paused","template_id":"node-22"}`, StatusPaused, "node-22"},
		{"computer", `{"id":"sb_1","status":"running","template_type":"miosa-sandbox"}`, StatusRunning, DefaultSandboxTemplate},
		{"both: status and template_type win", `{"id":"sb_1","status":"running","state":"paused","template_type":"a","template_id":"b"}`, StatusRunning, "a"},
		{"empty status falls back", `{"id":"sb_1","status":"","state":"provisioning","template_type":"","template_id":"b"}`, StatusProvisioning, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, body := range []string{tc.object, `{"data":` + tc.object + `}`} {
				got, ok := decodeGuess[Computer]([]byte(body), computerEnvelopeKeys)
				require.True(t, ok, body)
				assert.Equal(t, tc.status, got.Status, body)
				assert.Equal(t, tc.templateType, got.TemplateType, body)
			}
		})
	}
}
