package miosa_test

import (
	"context"
	"fmt"
	"log"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// Use holds a sandbox for the length of a function: it is created, ready
// when the function runs, and destroyed afterwards whatever happens.
func ExampleSandboxesService_Use() {
	// The fake stands in for the API here; with a real account,
	// client, err := miosa.NewClient("") reads MIOSA_API_KEY.
	srv, err := miosatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()

	err = client.Sandboxes.Use(ctx, miosa.ComputerCreateParams{Name: "demo"}, func(ctx context.Context, sb *miosa.Sandbox) error {
		res, err := client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: "echo hello"})
		if err != nil {
			return err
		}
		fmt.Print(res.Output)
		return res.Err() // a non-zero exit code is a result: Err makes it an error
	})
	if err != nil {
		log.Fatal(err)
	}

	left, err := client.Sandboxes.List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sandboxes left:", len(left))
	// Output:
	// hello
	// sandboxes left: 0
}

// All walks every page of machines and yields the sandboxes; List would
// stop after the first page (20 machines by default).
func ExampleSandboxesService_All() {
	srv, err := miosatest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()

	for i := range 30 {
		if _, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{Name: fmt.Sprint("job-", i)}); err != nil {
			log.Fatal(err)
		}
	}
	onFirstPage, err := client.Sandboxes.List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	all := 0
	for _, err := range client.Sandboxes.All(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		all++
	}
	fmt.Println("List:", len(onFirstPage), "All:", all)
	// Output:
	// List: 20 All: 30
}

// A sandbox made from a custom template carries that template as its
// template_type, so Sandboxes.List and Sandboxes.All, which keep the default
// sandbox template, leave it out: list it through Computers.All, filtered by
// the template it was created from.
func ExampleSandboxesService_All_customTemplate() {
	srv, err := miosatest.Start(miosatest.WithBuildStepDelay(0))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()

	tpl, err := client.SandboxTemplates.Create(ctx, miosa.SandboxTemplateCreateParams{
		Name: "node20", BuildSpec: miosa.BuildSpec{"runtime": "node", "version": "20"},
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.SandboxTemplates.CreateBuild(ctx, tpl.ID, miosa.TemplateBuildCreateParams{}); err != nil {
		log.Fatal(err)
	}
	for _, template := range []string{tpl.ID, miosa.DefaultSandboxTemplate} {
		if _, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{TemplateType: template}); err != nil {
			log.Fatal(err)
		}
	}

	custom := 0
	for c, err := range client.Computers.All(ctx, miosa.ComputerListParams{}) {
		if err != nil {
			log.Fatal(err)
		}
		if c.TemplateType == tpl.ID {
			custom++
		}
	}
	sandboxes, err := client.Sandboxes.List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("made from node20:", custom, "default sandboxes:", len(sandboxes))
	// Output:
	// made from node20: 1 default sandboxes: 1
}
