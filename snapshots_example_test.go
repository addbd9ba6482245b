package miosa_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// Checkpoint a sandbox before risky work, then branch a new sandbox from
// the checkpoint: the branch has the files as they were.
func ExampleSnapshotsService() {
	srv, err := miosatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()

	sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{Name: "agent"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.Sandboxes.WaitUntilReady(ctx, sb.ID, miosa.WaitOptions{}); err != nil {
		log.Fatal(err)
	}
	const config = "/home/user/app/config.json"
	if err := client.Files.Upload(ctx, sb.ID, config, strings.NewReader(`{"mode":"safe"}`), miosa.FileUploadParams{}); err != nil {
		log.Fatal(err)
	}

	// Checkpoint, and wait until the checkpoint can be used.
	snap, err := client.Snapshots.Create(ctx, sb.ID, miosa.SnapshotCreateParams{Comment: "before the migration"})
	if err != nil {
		log.Fatal(err)
	}
	if snap, err = client.Snapshots.WaitReady(ctx, sb.ID, snap.ID, miosa.WaitOptions{}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("snapshot", snap.Status)

	// The risky change goes wrong.
	if err := client.Files.Delete(ctx, sb.ID, config, miosa.FileDeleteParams{}); err != nil {
		log.Fatal(err)
	}

	// A new sandbox from the checkpoint; the first one is left as it is.
	branch, err := client.Snapshots.Restore(ctx, sb.ID, snap.ID)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.Sandboxes.WaitUntilReady(ctx, branch.ID, miosa.WaitOptions{}); err != nil {
		log.Fatal(err)
	}
	var restored bytes.Buffer
	if _, err := client.Files.Download(ctx, branch.ID, config, &restored); err != nil {
		log.Fatal(err)
	}
	fmt.Println("branch has", restored.String())
	// Output:
	// snapshot ready
	// branch has {"mode":"safe"}
}

// WaitReady reports a snapshot that failed with a *SnapshotFailedError.
func ExampleSnapshotFailedError() {
	srv, err := miosatest.Start(miosatest.WithBootDelay(0))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.FailSnapshots(1, "disk full") // the fake's next snapshot fails
	client := srv.Client()
	ctx := context.Background()

	sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{})
	if err != nil {
		log.Fatal(err)
	}
	snap, err := client.Snapshots.Create(ctx, sb.ID, miosa.SnapshotCreateParams{})
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.Snapshots.WaitReady(ctx, sb.ID, snap.ID, miosa.WaitOptions{})
	var failed *miosa.SnapshotFailedError
	if errors.As(err, &failed) {
		fmt.Println("snapshot", failed.Snapshot.Status, "- timed out:", errors.Is(err, miosa.ErrWaitTimeout))
	}
	// Output:
	// snapshot failed - timed out: false
}

// Extend keeps a sandbox alive past its timeout.
func ExampleSandboxesService_Extend() {
	srv, err := miosatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()

	sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{})
	if err != nil {
		log.Fatal(err)
	}
	sb, err = client.Sandboxes.Extend(ctx, sb.ID, time.Hour)
	if errors.Is(err, miosa.ErrOutcomeUnknown) {
		// The answer was lost: Get tells whether it arrived. Extend is
		// never sent twice by the SDK.
		log.Fatal(err)
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("timeout:", sb.Timeout)
	// Output:
	// timeout: 1h0m0s
}

// A paused sandbox keeps its disk and refuses exec until it is resumed.
func ExampleSandboxesService_Pause() {
	srv, err := miosatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()

	sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.Sandboxes.WaitUntilReady(ctx, sb.ID, miosa.WaitOptions{}); err != nil {
		log.Fatal(err)
	}
	if sb, err = client.Sandboxes.Pause(ctx, sb.ID); err != nil {
		log.Fatal(err)
	}
	fmt.Println("state:", sb.Status)
	_, err = client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: "echo hi"})
	fmt.Println("exec refused:", errors.Is(err, miosa.ErrConflict))

	if _, err := client.Sandboxes.Resume(ctx, sb.ID); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Sandboxes.WaitUntilReady(ctx, sb.ID, miosa.WaitOptions{}); err != nil {
		log.Fatal(err)
	}
	res, err := client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: "echo awake"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Output)
	// Output:
	// state: paused
	// exec refused: true
	// awake
}
