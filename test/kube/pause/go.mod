// The sandbox image of the test node (see main.go).
module cccp.tcxn.net/test/kube/pause

go 1.26.0
