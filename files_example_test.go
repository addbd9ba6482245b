package miosa_test

import (
	"context"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path"
	"path/filepath"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// Files moves a project into a sandbox and its result out, streamed both
// ways. Here the fake runs the command in a local shell, in the sandbox's
// own directory, which holds the files uploaded to it.
func ExampleFilesService() {
	srv, err := miosatest.Start(miosatest.WithLocalShell())
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()
	project, err := os.MkdirTemp("", "project")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(project)
	_ = os.MkdirAll(filepath.Join(project, "data"), 0o755)
	_ = os.WriteFile(filepath.Join(project, "data", "words.txt"), []byte("b a b c b a\n"), 0o644)
	_ = os.WriteFile(filepath.Join(project, "count.sh"), []byte("tr ' ' '\\n' < data/words.txt | sort | uniq -c | awk '{print $2, $1}'\n"), 0o644)

	err = client.Sandboxes.Use(ctx, miosa.ComputerCreateParams{Name: "files"}, func(ctx context.Context, sb *miosa.Sandbox) error {
		// Upload a directory's files: each streams from disk, and an
		// *os.File can seek back, so a failed attempt is sent again.
		err := filepath.WalkDir(project, func(local string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(project, local)
			f, err := os.Open(local)
			if err != nil {
				return err
			}
			defer f.Close()
			return client.Files.Upload(ctx, sb.ID, path.Join("/home/user/app", filepath.ToSlash(rel)), f, miosa.FileUploadParams{})
		})
		if err != nil {
			return err
		}
		// Run it.
		res, err := client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: "sh count.sh > counts.txt", WorkingDir: "/home/user/app"})
		if err != nil {
			return err
		}
		if err := res.Err(); err != nil {
			return err
		}
		// Download the result straight into a file: memory stays flat
		// whatever its size, and a cut transfer is an error, never a
		// short file.
		out, err := os.CreateTemp("", "counts")
		if err != nil {
			return err
		}
		defer os.Remove(out.Name())
		defer out.Close()
		n, err := client.Files.Download(ctx, sb.ID, "/home/user/app/counts.txt", out)
		if err != nil {
			return fmt.Errorf("after %d bytes: %w", n, err)
		}
		counts, _ := os.ReadFile(out.Name())
		fmt.Printf("%d bytes:\n%s", n, counts)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// 12 bytes:
	// a 2
	// b 3
	// c 1
}
