// SPDX-License-Identifier: Apache-2.0

package topohubtopo

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/spf13/pflag"

	"vitess.io/vitess/go/vt/log"
	"vitess.io/vitess/go/vt/servenv"
	"vitess.io/vitess/go/vt/topo"
	"vitess.io/vitess/go/vt/utils"

	"github.com/topohub/topohub/plugins/go/topohub"
)

// DefaultSchema is the schema of the topo tables when the address names none.
const DefaultSchema = "topo"

// Config is what a Server needs besides its address and root. The flags fill
// the process-wide one that the Factory uses; tests and embedders may build
// their own and call NewServer.
type Config struct {
	User         string        // MySQL user when the address has none
	Password     string        // MySQL password when the address has none
	Socket       string        // the hub's socket
	LockTTL      time.Duration // Lock and TryLock rows
	ElectionTTL  time.Duration // leadership rows
	PollInterval time.Duration // lock / election waiters without a hub notification
	SyncTimeout  time.Duration // read-your-writes: longest wait for the hub before a watch
	// InitialTimeout bounds how long Watch waits for its initial value from
	// the hub (a hub that is down: the client reconnects meanwhile).
	InitialTimeout time.Duration
}

var (
	flagUser         string
	flagPasswordFile string
	flagSocket       = topohub.DefaultSocket
	flagLockTTL      = 30 * time.Second
	flagElectionTTL  = 10 * time.Second
)

func init() {
	for _, cmd := range topo.FlagBinaries {
		servenv.OnParseFor(cmd, registerFlags)
	}
	topo.RegisterFactory("topohub", Factory{})
}

func registerFlags(fs *pflag.FlagSet) {
	utils.SetFlagStringVar(fs, &flagUser, "topo-topohub-mysql-user", flagUser,
		"MySQL user of the topohub topo backend (else $TOPOHUB_MYSQL_USER, else the user in the server address)")
	utils.SetFlagStringVar(fs, &flagPasswordFile, "topo-topohub-mysql-password-file", flagPasswordFile,
		"file holding the MySQL password of the topohub topo backend (else $TOPOHUB_MYSQL_PASSWORD)")
	utils.SetFlagStringVar(fs, &flagSocket, "topo-topohub-socket", flagSocket,
		"control socket of the host's topohubd, for watches")
	utils.SetFlagDurationVar(fs, &flagLockTTL, "topo-topohub-lock-ttl", flagLockTTL,
		"time to live of a topo lock row; the holder renews it every third of it")
	utils.SetFlagDurationVar(fs, &flagElectionTTL, "topo-topohub-election-ttl", flagElectionTTL,
		"time to live of a leadership row; the leader renews it every third of it")
}

// configFromFlags builds the Factory's Config from the flags and environment.
func configFromFlags() (Config, error) {
	c := Config{
		User:        flagUser,
		Socket:      flagSocket,
		LockTTL:     flagLockTTL,
		ElectionTTL: flagElectionTTL,
	}
	if c.User == "" {
		c.User = os.Getenv("TOPOHUB_MYSQL_USER")
	}
	if flagPasswordFile != "" {
		b, err := os.ReadFile(flagPasswordFile)
		if err != nil {
			return c, fmt.Errorf("topohubtopo: --topo-topohub-mysql-password-file: %w", err)
		}
		c.Password = strings.TrimRight(string(b), "\r\n")
	} else {
		c.Password = os.Getenv("TOPOHUB_MYSQL_PASSWORD")
	}
	return c, nil
}

func (c Config) withDefaults() Config {
	if c.Socket == "" {
		c.Socket = topohub.DefaultSocket
	}
	if c.LockTTL <= 0 {
		c.LockTTL = 30 * time.Second
	}
	if c.ElectionTTL <= 0 {
		c.ElectionTTL = 10 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.SyncTimeout <= 0 {
		c.SyncTimeout = 10 * time.Second
	}
	if c.InitialTimeout <= 0 {
		c.InitialTimeout = 10 * time.Second
	}
	return c
}

var schemaName = regexp.MustCompile(`^[A-Za-z0-9_$]{1,64}$`)

// parseServerAddr turns a server address (see doc.go) into a driver
// configuration and the schema of the tables.
func parseServerAddr(addr string, c Config) (*mysql.Config, string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return nil, "", errors.New("topohubtopo: empty server address")
	}
	var cfg *mysql.Config
	if strings.Contains(addr, "(") {
		var err error
		cfg, err = mysql.ParseDSN(addr)
		if err != nil {
			return nil, "", fmt.Errorf("topohubtopo: server address is not a valid DSN: %w", err)
		}
		if cfg.Passwd != "" {
			log.Warn("topohubtopo: the server address carries a password; it is stored in the topology and shown by tools: prefer --topo-topohub-mysql-password-file")
		}
	} else {
		hostPort, schema, _ := strings.Cut(addr, "/")
		if _, _, err := net.SplitHostPort(hostPort); err != nil {
			hostPort = net.JoinHostPort(hostPort, "3306")
		}
		if _, port, err := net.SplitHostPort(hostPort); err != nil || port == "" {
			return nil, "", fmt.Errorf("topohubtopo: server address %q is neither host[:port][/schema] nor a DSN", addr)
		}
		cfg = mysql.NewConfig()
		cfg.Net = "tcp"
		cfg.Addr = hostPort
		cfg.DBName = schema
	}
	if cfg.User == "" {
		cfg.User = c.User
	}
	if cfg.Passwd == "" {
		cfg.Passwd = c.Password
	}
	if cfg.User == "" {
		return nil, "", errors.New("topohubtopo: no MySQL user: set --topo-topohub-mysql-user or $TOPOHUB_MYSQL_USER")
	}
	schema := cfg.DBName
	if schema == "" {
		schema = DefaultSchema
	}
	if !schemaName.MatchString(schema) {
		return nil, "", fmt.Errorf("topohubtopo: schema name %q: only letters, digits, _ and $", schema)
	}
	// The connection does not select the schema: every statement names it, so
	// a missing schema is reported by the statement that needs it.
	cfg.DBName = ""
	// Rows matched, not rows changed: a renewal within the same second of a
	// TIMESTAMP changes nothing and must not read as a lost lock.
	cfg.ClientFoundRows = true
	// Strict for this backend's sessions whatever the server's default: a
	// path too long for its column, or not valid in its character set, must
	// fail, never be truncated or mangled into another row's key.
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	if _, set := cfg.Params["sql_mode"]; !set {
		cfg.Params["sql_mode"] = "CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'STRICT_ALL_TABLES')"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	// Arguments in the statement's text, escaped by the driver (binary values
	// as _binary literals), instead of a prepare, an execute and a close per
	// statement: an Update is 5 round trips, not 9, and the server does half
	// the work. Not with a character set where escaping is unsafe (the
	// driver refuses those collations), nor where the address says no.
	if !strings.Contains(addr, "interpolateParams=") && !unsafeCharset(cfg.Collation, dsnParam(addr, "charset")) {
		cfg.InterpolateParams = true
	}
	return cfg, schema, nil
}

// unsafeCharset: a collation or a charset list (the DSN's charset=) among
// the multi-byte character sets in which a backslash can be the second byte
// of a character (the driver's list), where only prepared statements are safe.
func unsafeCharset(collation, charsets string) bool {
	names := append(strings.Split(charsets, ","), strings.SplitN(collation, "_", 2)[0])
	for _, n := range names {
		switch strings.ToLower(strings.TrimSpace(n)) {
		case "big5", "gbk", "sjis", "cp932", "gb2312", "gb18030":
			return true
		}
	}
	return false
}

// dsnParam is the value of one parameter of a DSN ("" if absent).
func dsnParam(dsn, key string) string {
	_, q, ok := strings.Cut(dsn, "?")
	if !ok {
		return ""
	}
	for _, kv := range strings.Split(q, "&") {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}
