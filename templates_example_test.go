package miosa_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// A template turns a build spec into a reusable sandbox image: validate the
// spec, define the template, build it, and wait for the build.
func ExampleSandboxTemplatesService() {
	// The fake stands in for the API here; with a real account,
	// client, err := miosa.NewClient("") reads MIOSA_API_KEY.
	srv, err := miosatest.Start(miosatest.WithBuildStepDelay(0))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()

	spec := miosa.BuildSpec{"runtime": "node", "version": "20", "packages": []string{"curl"}}
	verdict, err := client.SandboxTemplates.Validate(ctx, spec)
	if err != nil {
		log.Fatal(err)
	}
	if !verdict.Valid {
		log.Fatalf("invalid build spec: %s", strings.Join(verdict.Errors, "; "))
	}

	tpl, err := client.SandboxTemplates.Create(ctx, miosa.SandboxTemplateCreateParams{
		Name:        "node20",
		BuildSpec:   spec,
		Description: "Node 20 with curl",
	})
	if err != nil {
		log.Fatal(err)
	}

	build, err := client.SandboxTemplates.CreateBuild(ctx, tpl.ID, miosa.TemplateBuildCreateParams{})
	if err != nil {
		log.Fatal(err)
	}
	build, err = client.SandboxTemplates.WaitForBuild(ctx, tpl.ID, build.ID, miosa.WaitOptions{Timeout: 10 * time.Minute})
	var failed *miosa.BuildFailedError
	switch {
	case errors.As(err, &failed):
		log.Fatalf("build failed: %s (log: %s)", failed.Build.Error, failed.Build.LogURL)
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println("template", tpl.Name, "build", build.Status)
	// Output: template node20 build ready
}
