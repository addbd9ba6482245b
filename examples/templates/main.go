// Command templates defines a reusable sandbox image and uses it: it reads
// the build-spec schema, validates a spec, creates a template, builds it,
// waits for the build, and creates a sandbox from the template.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

func main() {
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
	if err := run(client); err != nil {
		log.Fatal(err)
	}
}

func run(client *miosa.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	schema, err := client.SandboxTemplates.BuildSpecSchema(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("build-spec schema: %d bytes of JSON Schema\n", len(schema))

	spec := miosa.BuildSpec{"runtime": "node", "version": "20", "packages": []string{"curl"}}
	verdict, err := client.SandboxTemplates.Validate(ctx, spec)
	if err != nil {
		return err
	}
	if !verdict.Valid {
		return fmt.Errorf("build spec rejected: %v", verdict.Errors)
	}
	fmt.Println("build spec is valid")

	tpl, err := client.SandboxTemplates.Create(ctx, miosa.SandboxTemplateCreateParams{
		Name:        "node20-curl",
		Description: "Node 20 with curl",
		BuildSpec:   spec,
	})
	if err != nil {
		return err
	}
	fmt.Printf("created template %s (%s)\n", tpl.ID, tpl.Name)

	build, err := client.SandboxTemplates.CreateBuild(ctx, tpl.ID, miosa.TemplateBuildCreateParams{})
	if err != nil {
		return err
	}
	fmt.Printf("build %s started (%s)\n", build.ID, build.Status)

	// Real builds take minutes; polling every 2 s (the default) is plenty
	// there. The fake builds in milliseconds.
	build, err = client.SandboxTemplates.WaitForBuild(ctx, tpl.ID, build.ID, miosa.WaitOptions{PollInterval: 100 * time.Millisecond})
	var failed *miosa.BuildFailedError
	if errors.As(err, &failed) {
		return fmt.Errorf("build failed (log: %s): %w", failed.Build.LogURL, err)
	}
	if err != nil {
		return err
	}
	fmt.Printf("build %s finished: %s\n", build.ID, build.Status)

	sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{Name: "from-template", TemplateType: tpl.ID})
	if err != nil {
		return err
	}
	defer func() {
		if err := client.Computers.Destroy(context.WithoutCancel(ctx), sb.ID); err != nil {
			log.Printf("deleting %s: %v", sb.ID, err)
		}
	}()
	fmt.Printf("sandbox %s created from template %s\n", sb.ID, sb.TemplateType)
	return nil
}
