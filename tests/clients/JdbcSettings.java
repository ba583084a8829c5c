// JdbcSettings.java: pgjdbc's connect path (Debian 12's
// libpostgresql-jdbc-java) through pgnear, for 300_driver_settings.t.
// Run by java's single-file source launcher (a JRE: Debian's
// default-jre-headless holds the jdk.compiler module it needs):
//
//   java -cp /usr/share/java/postgresql.jar tests/clients/JdbcSettings.java
//        --port PORT [--host H] [--user U] [--password P] [--database D] [--rounds N]
//
// Three connections, their startup parameters alike (one JVM: the same
// TimeZone).  pgjdbc's connect sends SET extra_float_digits = 3 and SET
// application_name = 'PostgreSQL JDBC Driver' (no assumeMinServerVersion);
// "plain" adds nothing, the tenants SET search_path TO their schema and SET
// TIME ZONE of their own.  Each reports the settings its session holds then
// (pg_settings whose source is 'session'); then for --rounds rounds they
// take turns, each running two PreparedStatements it keeps (pgjdbc
// prepares them on the server, as S_n, from their 5th run:
// prepareThreshold): SELECT who FROM items, and a SELECT of its
// search_path, TimeZone, extra_float_digits, application_name, 0.1 + 0.2
// as float8 text (0.30000000000000004: extra_float_digits above 0, where
// 0 rounds it to 0.3) and pg_backend_pid();
// each in a transaction of its own (autocommit) in even rounds, both in one
// (setAutoCommit(false) ... commit()) in odd ones.
//
// It prints one JSON line: {"driver": "pgjdbc", "clients": [{"id",
// "session", "answers", "backends", "failure_count", "failures"}]}, or
// {"fatal": ...}; then keeps the connections open until it reads "stop" (or
// EOF) on stdin, and closes them.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;

public class JdbcSettings {
    // id, its SETs after connecting, its row of items, search_path, TimeZone (null: the JVM's)
    static final String[][] CLIENTS = {
        {"plain", "", "public", "\"$user\", public", null},
        {"tenant_a", "SET search_path TO tenant_a;SET TIME ZONE 'Asia/Kolkata'", "a", "tenant_a", "Asia/Kolkata"},
        {"tenant_b", "SET search_path TO tenant_b;SET TIME ZONE 'America/Los_Angeles'", "b", "tenant_b",
         "America/Los_Angeles"},
    };
    static final String LOOK = "SELECT current_setting('search_path'), current_setting('TimeZone'), "
        + "current_setting('extra_float_digits'), current_setting('application_name'), (0.1::float8 + 0.2)::text, "
        + "pg_backend_pid(), ?::int";

    static String json(Object o) {
        if (o == null) return "null";
        if (o instanceof Number) return o.toString();
        if (o instanceof List) {
            StringBuilder b = new StringBuilder("[");
            for (Object x : (List<?>) o) b.append(b.length() > 1 ? "," : "").append(json(x));
            return b.append("]").toString();
        }
        if (o instanceof Map) {
            StringBuilder b = new StringBuilder("{");
            for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet())
                b.append(b.length() > 1 ? "," : "").append(json(e.getKey().toString())).append(":").append(json(e.getValue()));
            return b.append("}").toString();
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : o.toString().toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append("\"").toString();
    }

    static class Client {
        String[] spec;
        Connection conn;
        PreparedStatement who, look;
        Map<String, Object> res = new TreeMap<>();
        List<Object> answers = new ArrayList<>(), backends = new ArrayList<>(), failures = new ArrayList<>();
        int failureCount;
        String jvmZone;

        void fail(String what) {
            failureCount++;
            if (failures.size() < 10) failures.add(what);
        }

        void round(int r) throws Exception {
            boolean block = r % 2 == 1;
            if (block) conn.setAutoCommit(false);
            List<Object> rows = new ArrayList<>();
            try (ResultSet rs = who.executeQuery()) {
                while (rs.next()) rows.add(rs.getString(1));
            }
            look.setInt(1, r);
            List<Object> got = new ArrayList<>();
            int pid, echo;
            try (ResultSet rs = look.executeQuery()) {
                rs.next();
                for (int k = 1; k <= 5; k++) got.add(rs.getString(k));
                pid = rs.getInt(6);
                echo = rs.getInt(7);
            }
            if (block) {
                conn.commit();
                conn.setAutoCommit(true);
            }
            List<Object> answer = new ArrayList<>(List.of(r, rows));
            answer.addAll(got);
            answers.add(answer);
            if (!backends.contains(pid)) backends.add(pid);
            List<Object> want = List.of(List.of(spec[2]), spec[3], spec[4] != null ? spec[4] : jvmZone, "3",
                                        "PostgreSQL JDBC Driver", "0.30000000000000004", r);
            List<Object> seen = new ArrayList<>(List.of(rows));
            seen.addAll(got);
            seen.add(echo);
            if (!seen.equals(want)) fail("round " + r + ": " + json(seen) + ", want " + json(want));
        }
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> o = new HashMap<>(Map.of("--host", "127.0.0.1", "--user", "app", "--password", "app-secret",
                                                     "--database", "movr", "--rounds", "10"));
        for (int i = 0; i + 1 < args.length; i += 2) o.put(args[i], args[i + 1]);
        if (!o.containsKey("--port")) {
            System.err.println("JdbcSettings: --port is required");
            System.exit(2);
        }
        String url = "jdbc:postgresql://" + o.get("--host") + ":" + o.get("--port") + "/" + o.get("--database");
        List<Client> clients = new ArrayList<>();
        try {
            for (String[] spec : CLIENTS) {
                Properties p = new Properties();
                p.setProperty("user", o.get("--user"));
                p.setProperty("password", o.get("--password"));
                p.setProperty("sslmode", "disable");
                Client c = new Client();
                c.spec = spec;
                c.conn = DriverManager.getConnection(url, p);
                try (Statement st = c.conn.createStatement()) {
                    for (String sql : spec[1].split(";"))
                        if (!sql.isEmpty()) st.execute(sql);
                    Map<String, Object> session = new TreeMap<>();
                    try (ResultSet rs = st.executeQuery("SELECT name, setting FROM pg_settings WHERE source = 'session'")) {
                        while (rs.next()) session.put(rs.getString(1), rs.getString(2));
                    }
                    c.res.put("session", session);
                    try (ResultSet rs = st.executeQuery("SELECT current_setting('TimeZone')")) {
                        rs.next();
                        c.jvmZone = rs.getString(1);
                    }
                }
                c.who = c.conn.prepareStatement("SELECT who FROM items");
                c.look = c.conn.prepareStatement(LOOK);
                clients.add(c);
            }
        } catch (Exception e) {
            System.out.println(json(Map.of("fatal", e.toString())));
            System.exit(1);
        }
        int rounds = Integer.parseInt(o.get("--rounds"));
        for (int r = 0; r < rounds; r++) {
            for (Client c : clients) {
                try {
                    c.round(r);
                } catch (Exception e) {
                    c.fail("round " + r + ": " + e);
                    try {
                        if (!c.conn.getAutoCommit()) {
                            c.conn.rollback();
                            c.conn.setAutoCommit(true);
                        }
                    } catch (Exception e2) {
                        c.fail("rollback: " + e2);
                    }
                }
            }
        }
        List<Object> out = new ArrayList<>();
        for (Client c : clients) {
            c.res.put("id", c.spec[0]);
            c.res.put("answers", c.answers);
            c.res.put("backends", c.backends);
            c.res.put("failure_count", c.failureCount);
            c.res.put("failures", c.failures);
            out.add(c.res);
        }
        Map<String, Object> top = new TreeMap<>();
        top.put("driver", "pgjdbc");
        top.put("clients", out);
        System.out.println(json(top));
        System.out.flush();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; )
            if (line.trim().equals("stop")) break;
        for (Client c : clients) c.conn.close();
    }
}
