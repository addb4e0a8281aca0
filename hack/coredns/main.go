// Command coredns is CoreDNS with only the plugins the node tier needs (devtools/node.py): cluster DNS for
// Services and Pods from the kubernetes plugin, answered on the node's bridge IP. No forwarding: pods of the local
// node have nothing outside the cluster to resolve. Built by hack/coredns/build.sh.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The plugins in the order CoreDNS chains them (a subset of its plugin.cfg, same relative order).
var directives = []string{"bind", "errors", "health", "ready", "cache", "loadbalance", "kubernetes"}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
