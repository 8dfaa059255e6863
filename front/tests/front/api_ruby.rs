//! The XML-RPC API through Ruby's xmlrpc client (the library OpenNebula's Ruby OCA uses).

use crate::api_common::{Front, NO_DRIVER_CONF};

const SCRIPT: &str = r#"
require "xmlrpc/client"
s = File.read(ENV["ONE_AUTH"]).strip
c = XMLRPC::Client.new2(ENV["ONE_XMLRPC"])
def check(cond, what) raise "check failed: #{what}" unless cond end
r = c.call("one.hook.allocate", s, "NAME = rb\nTYPE = api\nCOMMAND = /bin/true\nCALL = one.vm.allocate")
check(r == [true, 0, 0], r.inspect)
r = c.call("one.hook.info", s, 0, false)
check(r[0] == true && r[1].start_with?("<HOOK><ID>0</ID><NAME>rb</NAME><TYPE>api</TYPE>"), r.inspect)
r = c.call("one.hook.update", s, 0, "NOTE = \"a & <b>\"", 1)
check(r == [true, 0, 0], r.inspect)
r = c.call("one.hook.info", s, 0)
check(r[1].include?("<NOTE><![CDATA[a & <b>]]></NOTE>"), r.inspect)
r = c.call("one.hook.lock", s, 0, 2, false)
check(r == [true, 0, 0], r.inspect)
r = c.call("one.hook.delete", s, 0)
check(r == [false, "[one.hook.delete] User [0] : HOOK is locked. [0].", 512, 0, -1], r.inspect)
r = c.call("one.hook.info", s, 7)
check(r == [false, "[one.hook.info] Error getting hook [7].", 1024, 7, -1], r.inspect)
begin
  c.call("one.hook.info", s, "x")
  raise "no fault"
rescue XMLRPC::FaultException => e
  check(e.faultCode == -501, e.inspect)
end
r = c.call("one.hookpool.info", s, -1, -1, -1)
check(r[1].start_with?("<HOOK_POOL><HOOK><ID>0</ID>"), r.inspect)
puts "ruby: ok"
"#;

#[test]
fn hook_api_with_ruby_xmlrpc() {
    let dir = tempfile::tempdir().unwrap();
    let front = Front::start(dir.path(), NO_DRIVER_CONF);
    let out = std::process::Command::new("ruby")
        .arg("-e")
        .arg(SCRIPT)
        .env("ONE_XMLRPC", &front.endpoint)
        .env("ONE_AUTH", &front.auth_file)
        .output()
        .expect("ruby not found: run scripts/setup, which installs it");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ruby: ok"),
        "ruby client failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    front.stop().unwrap();
}
