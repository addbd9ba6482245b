package wire

import "testing"

// benchComputer is a realistic single-object answer, as GET /computers/{id}
// returns it.
const benchComputer = `{"data":{"id":"cmp_1","name":"box","slug":"box","status":"running","template_type":"miosa-desktop",` +
	`"size":"small","ip_address":"10.0.0.2","vnc_url":"https://vnc.test/cmp_1","visibility":"private",` +
	`"tenant_id":"t_1","workspace_id":"w_1","metadata":{"team":"a"},"external_workspace_id":"ew",` +
	`"external_user_id":"eu","external_project_id":"ep","created_at":"2026-05-18T10:00:00Z",` +
	`"updated_at":"2026-05-18T10:00:01.5Z","future_field":{"x":1}}}`

// BenchmarkObject times finding the object in a typical answer: every call
// of the SDK that returns one resource pays it once.
func BenchmarkObject(b *testing.B) {
	body := []byte(benchComputer)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Object(body, "computer"); err != nil {
			b.Fatal(err)
		}
	}
}
