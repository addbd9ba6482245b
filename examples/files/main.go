// Command files uploads a small project into a sandbox, runs it there and
// downloads what it produced: every file streamed, never held in memory.
//
// With MIOSA_API_KEY set it uses the real API; otherwise it runs against the
// embedded fake, which runs the command in a local shell.
package main

import (
	"context"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// project is the small project this example ships: a script and its data.
var project = map[string]string{
	"report.sh": `mkdir -p out
echo "lines: $(wc -l < data/orders.csv)" > out/report.txt
awk -F, 'NR > 1 { total += $3 } END { print "total: " total }' data/orders.csv >> out/report.txt
`,
	"data/orders.csv": "id,customer,amount\n1,ada,120\n2,grace,80\n3,ada,45\n",
}

// remoteDir is where the project goes in the sandbox.
const remoteDir = "/home/user/app"

func main() {
	var client *miosa.Client
	if os.Getenv("MIOSA_API_KEY") != "" {
		var err error
		if client, err = miosa.NewClient(""); err != nil { // reads MIOSA_API_KEY (and MIOSA_BASE_URL)
			log.Fatal(err)
		}
		fmt.Println("using the MIOSA API at", client.BaseURL())
	} else {
		// The fake API, in this process. WithLocalShell runs the command on
		// this machine with /bin/sh: fine for this fixed script, never for
		// untrusted input.
		srv, err := miosatest.Start(miosatest.WithLocalShell())
		if err != nil {
			log.Fatal(err)
		}
		defer srv.Close()
		client = srv.Client()
		fmt.Println("MIOSA_API_KEY is not set: using the embedded fake MIOSA API")
	}
	if err := run(client); err != nil {
		log.Fatal(err)
	}
}

func run(client *miosa.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	local, err := writeProject()
	if err != nil {
		return err
	}
	defer os.RemoveAll(local)

	return client.Sandboxes.Use(ctx, miosa.ComputerCreateParams{Name: "files-example"}, func(ctx context.Context, sb *miosa.Sandbox) error {
		fmt.Println("sandbox", sb.ID, "is ready")
		if err := uploadDir(ctx, client, sb.ID, local, remoteDir); err != nil {
			return err
		}
		entries, err := client.Files.List(ctx, sb.ID, remoteDir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			fmt.Printf("  %-10s %-9s %d bytes\n", e.Name, e.Type, e.Size)
		}

		res, err := client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: "sh report.sh", WorkingDir: remoteDir})
		if err != nil {
			return err
		}
		if err := res.Err(); err != nil {
			return err
		}

		// The result goes straight into a local file: memory stays flat
		// however large it is.
		out := filepath.Join(local, "report.txt")
		n, err := downloadTo(ctx, client, sb.ID, remoteDir+"/out/report.txt", out)
		if err != nil {
			return err
		}
		report, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		fmt.Printf("downloaded out/report.txt (%d bytes):\n%s", n, report)
		return nil
	})
}

// writeProject puts the project in a temporary directory, as if it were a
// checkout on this machine.
func writeProject() (string, error) {
	dir, err := os.MkdirTemp("", "files-example-")
	if err != nil {
		return "", err
	}
	for name, content := range project {
		file := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// uploadDir uploads every file under local to the same place under remote.
// Each streams from disk; an *os.File can seek back, so an attempt that
// failed on the way is sent again.
func uploadDir(ctx context.Context, client *miosa.Client, id, local, remote string) error {
	return filepath.WalkDir(local, func(file string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(local, file)
		if err != nil {
			return err
		}
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		target := path.Join(remote, filepath.ToSlash(rel))
		if err := client.Files.Upload(ctx, id, target, f, miosa.FileUploadParams{}); err != nil {
			return err
		}
		fmt.Println("uploaded", target)
		return nil
	})
}

// downloadTo streams a remote file into a local one. A transfer that breaks
// off is an error, and the partial file is removed.
func downloadTo(ctx context.Context, client *miosa.Client, id, remote, local string) (int64, error) {
	f, err := os.Create(local)
	if err != nil {
		return 0, err
	}
	n, err := client.Files.Download(ctx, id, remote, f)
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		os.Remove(local)
		return n, fmt.Errorf("downloading %s after %d bytes: %w", remote, n, err)
	}
	return n, nil
}
