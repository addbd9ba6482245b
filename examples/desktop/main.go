// Command desktop is the loop of a computer-use agent: it creates a desktop
// computer, waits until it runs, takes a screenshot, clicks, types, presses
// Return, takes another screenshot, and destroys the computer.
//
// Screenshots go to the directory -out names, or to a temporary one that
// is removed at the end. With MIOSA_API_KEY set it uses the real API;
// otherwise it runs against the embedded fake, whose screen is drawn from
// what was done to it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

func main() {
	out := flag.String("out", "", "directory to keep the screenshots in (default: a temporary one, removed at the end)")
	flag.Parse()

	var client *miosa.Client
	if os.Getenv("MIOSA_API_KEY") != "" {
		var err error
		if client, err = miosa.NewClient(""); err != nil { // reads MIOSA_API_KEY (and MIOSA_BASE_URL)
			log.Fatal(err)
		}
		fmt.Println("using the MIOSA API at", client.BaseURL())
	} else {
		srv, err := miosatest.Start() // the fake API, in this process: nothing leaves the machine
		if err != nil {
			log.Fatal(err)
		}
		defer srv.Close()
		client = srv.Client()
		fmt.Println("MIOSA_API_KEY is not set: using the embedded fake MIOSA API")
	}

	dir := *out
	if dir == "" {
		tmp, err := os.MkdirTemp("", "desktop-example-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	if err := run(client, dir); err != nil {
		log.Fatal(err)
	}
}

func run(client *miosa.Client, dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	c, err := client.Computers.Create(ctx, miosa.ComputerCreateParams{Name: "desktop-example", TemplateType: "miosa-desktop"})
	if err != nil {
		return err
	}
	fmt.Printf("created computer %s (%s)\n", c.ID, c.Status)
	defer func() {
		if err := client.Computers.Destroy(context.WithoutCancel(ctx), c.ID); err != nil {
			log.Printf("destroying %s: %v", c.ID, err)
			return
		}
		fmt.Printf("destroyed %s\n", c.ID)
	}()
	// Polling every 2 s suits a real desktop; the fake boots in milliseconds.
	if _, err := client.Computers.WaitForStatus(ctx, c.ID, miosa.StatusRunning, miosa.WaitOptions{PollInterval: 250 * time.Millisecond}); err != nil {
		return err
	}
	fmt.Println("running")

	before, err := screenshot(ctx, client, c.ID, filepath.Join(dir, "before.png"))
	if err != nil {
		return err
	}
	// Coordinates are those of the screenshot just taken: an agent that
	// clicks where it saw something uses the size the image reports.
	center := image.Pt(before.Width/2, before.Height/2)
	steps := []struct {
		what string
		do   func() error
	}{
		{fmt.Sprintf("click at %v", center), func() error {
			return client.Desktop.Click(ctx, c.ID, center, miosa.ClickParams{})
		}},
		{"type a line", func() error {
			return client.Desktop.Type(ctx, c.ID, "echo hello from miosa-go", miosa.TypeParams{Delay: 10 * time.Millisecond})
		}},
		{"press Return", func() error { return client.Desktop.Key(ctx, c.ID, "Return") }},
	}
	for _, step := range steps {
		err := step.do()
		if errors.Is(err, miosa.ErrOutcomeUnknown) {
			// The action may have happened: never repeat it blindly. Look
			// at the screen first, as the next screenshot does.
			fmt.Printf("%s: the answer was lost; it may or may not have happened\n", step.what)
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", step.what, err)
		}
		fmt.Println(step.what)
	}

	_, err = screenshot(ctx, client, c.ID, filepath.Join(dir, "after.png"))
	return err
}

// screenshot streams a screenshot of the whole screen into a new file at
// path. A screenshot that fails leaves no file behind.
func screenshot(ctx context.Context, client *miosa.Client, id, path string) (*miosa.Screenshot, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	shot, err := client.Desktop.Screenshot(ctx, id, f)
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("screenshot: %w", err)
	}
	fmt.Printf("screenshot %s: %d×%d pixels, %d bytes\n", filepath.Base(path), shot.Width, shot.Height, shot.Bytes)
	return shot, nil
}
