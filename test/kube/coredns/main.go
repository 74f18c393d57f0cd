// CoreDNS with only the plugins the test node's cluster DNS uses, so the
// build compiles a fraction of the full distribution. The directive order
// below is CoreDNS's own (plugin.cfg), restricted to these plugins. Names outside
// the cluster domain get no answer: nothing in the tests needs them.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	dnsserver.Directives = []string{"ready", "health", "errors", "cache", "kubernetes"}
}

func main() {
	coremain.Run()
}
