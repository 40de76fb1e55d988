// composecheck loads a Compose file with compose-go, the library Docker Compose v2 itself uses:
// it validates the file against the Compose specification's schema, interpolates variables,
// resolves anchors and merges, then prints the resulting project as JSON. tickstream's tests
// use it to check deploy/docker-compose.yml without a Docker engine.
//
//	composecheck [--env-file F] compose.yml
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	envFile := flag.String("env-file", "", "variables for interpolation (like docker compose --env-file)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: composecheck [--env-file F] compose.yml")
		os.Exit(2)
	}
	opts := []cli.ProjectOptionsFn{cli.WithName("tickstream"), cli.WithResolvedPaths(true)}
	if *envFile != "" {
		opts = append(opts, cli.WithEnvFiles(*envFile), cli.WithDotEnv)
	}
	options, err := cli.NewProjectOptions([]string{flag.Arg(0)}, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	out, err := json.MarshalIndent(project, "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	fmt.Println(string(out))
}
