// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"os"
	"strings"
	"testing"
)

func TestStart_runs_mariadb_and_the_hub_and_removes_them(t *testing.T) {
	var dirs []string
	t.Run("env", func(t *testing.T) {
		e := Start(t, HubOptions{})
		if _, err := os.Stat(e.Hub.Socket); err != nil {
			t.Fatalf("hub socket: %v", err)
		}
		out := e.DB.MustExec(t, "SELECT COUNT(*) FROM topo.topo_data")
		if strings.TrimSpace(out) != "0" {
			t.Fatalf("count: %q", out)
		}
		dirs = append(dirs, e.DB.Dir, e.Hub.Dir)
	})
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s left behind", d)
		}
	}
}
