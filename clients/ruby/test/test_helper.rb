# Shared by the jobd gem's tests: real processes (redis-server, jobd, puma
# serving a Rails app) on free loopback ports in a temporary folder, stopped by
# PID when the run ends, and polls with deadlines.
require "minitest/autorun"
require "fileutils"
require "tmpdir"
require "socket"
require "json"
require "securerandom"
require "openssl"

GEM_ROOT = File.expand_path("..", __dir__)
REPO_ROOT = File.expand_path("../../..", __dir__)
$LOAD_PATH.unshift(File.join(GEM_ROOT, "lib"))
# Not "jobd" itself: it loads its Railtie only when Rails is loaded first,
# which is what the Rails tests do when they boot the test app.
require "jobd/client"

module JobdTest
  module_function

  def now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  # Polls the block until it returns a truthy value (returned) or `timeout`
  # seconds pass (a failed assertion naming `what`). The interval only paces
  # the polling; the condition decides.
  def wait_until(what, timeout: 20, interval: 0.02)
    deadline = now + timeout
    loop do
      value = yield
      return value if value
      raise Minitest::Assertion, "timed out after #{timeout} s waiting for #{what}" if now > deadline

      sleep(interval)
    end
  end

  # A free loopback port below the kernel's ephemeral range (so no outgoing
  # connection holds it), as tests/ports.sh picks them.
  def free_port
    low = File.read("/proc/sys/net/ipv4/ip_local_port_range").split.first.to_i rescue 32_768
    low = 32_768 if low <= 11_000
    100.times do
      port = 10_000 + rand(low - 10_000)
      begin
        TCPServer.new("127.0.0.1", port).close
        return port
      rescue SystemCallError
        next
      end
    end
    raise "no free port found"
  end

  # One plain HTTP request on a fresh connection: [status, body].
  def http(method, port, path, body: nil, headers: {})
    require "net/http"
    Net::HTTP.start("127.0.0.1", port, open_timeout: 5, read_timeout: 30) do |h|
      req = Net::HTTPGenericRequest.new(method, !body.nil?, true, path, headers)
      req.body = body if body
      res = h.request(req)
      [res.code.to_i, res.body.to_s]
    end
  rescue SystemCallError, IOError, Net::OpenTimeout
    [0, ""]
  end

  # A child process with its output in `log`, stopped by PID (see #stop).
  class Child
    attr_reader :pid, :log, :name

    def initialize(name, argv, log:, env: {}, chdir: Dir.pwd)
      @name = name
      @log = log
      @pid = Process.spawn(env, *argv, chdir: chdir, out: [log, "a"], err: [log, "a"], in: File::NULL)
    end

    # Reaps the process if it has exited (then forgets its PID, which may be reused).
    def alive?
      return false unless @pid
      return true if Process.waitpid(@pid, Process::WNOHANG).nil?

      @pid = nil
      false
    rescue Errno::ECHILD
      @pid = nil
      false
    end

    # SIGTERM (or `signal`), up to 10 s, then SIGKILL; reaps the process.
    def stop(signal = "TERM")
      return unless @pid

      begin
        Process.kill(signal, @pid)
        deadline = JobdTest.now + 10
        reaped = nil
        sleep(0.02) while (reaped = Process.waitpid(@pid, Process::WNOHANG)).nil? && JobdTest.now < deadline
        unless reaped # still ours (not reaped), so the PID cannot have been reused
          Process.kill("KILL", @pid)
          Process.waitpid(@pid)
        end
      rescue Errno::ESRCH, Errno::ECHILD
        nil
      end
      @pid = nil
    end

    def tail(lines = 30)
      File.exist?(@log) ? File.readlines(@log).last(lines).join : ""
    end
  end

  def jobd_bin
    ENV["JOBD_BIN"] || File.join(REPO_ROOT, "build", "jobd")
  end

  # A redis-server on a free port with its files in `dir`; waits for PING.
  def start_redis(dir, port: free_port)
    FileUtils.mkdir_p(dir)
    child = Child.new("redis-server", ["redis-server", "--port", port.to_s, "--bind", "127.0.0.1", "--dir", dir,
                                       "--save", "", "--appendonly", "no", "--daemonize", "no"],
                      log: File.join(dir, "redis.log"))
    wait_until("redis-server on port #{port}: #{child.tail(5)}", timeout: 10) do
      raise "redis-server exited: #{child.tail(5)}" unless child.alive?

      redis_ping(port)
    end
    [child, port]
  end

  def redis_ping(port)
    s = Socket.tcp("127.0.0.1", port, connect_timeout: 1)
    s.write("PING\r\n")
    s.wait_readable(1) && s.readpartial(64).start_with?("+PONG")
  rescue SystemCallError, IOError
    false
  ensure
    s&.close
  end

  # jobd with `config` (a Hash) on a free port; waits until /readyz answers 200.
  def start_jobd(dir, config, env: {})
    FileUtils.mkdir_p(dir)
    port = free_port
    path = File.join(dir, "jobd-#{port}.json")
    File.write(path, JSON.pretty_generate(config))
    child = Child.new("jobd", [jobd_bin, "--config", path],
                      log: File.join(dir, "jobd-#{port}.log"),
                      env: { "JOBD_LISTEN" => "127.0.0.1:#{port}" }.merge(env))
    wait_until("jobd on port #{port}", timeout: 15) do
      raise "jobd exited: #{child.tail}" unless child.alive?

      http("GET", port, "/readyz").first == 200
    end
    [child, port]
  end

  # Everything the Rails tests need, started once per run: redis-server, jobd
  # with clients/ruby/test/jobd.json, and puma serving a copy of the test app.
  class Stack
    attr_reader :tmp, :out, :app, :secret, :jobd_port, :rails_port, :redis_port, :rails

    def self.instance
      @instance ||= begin
        stack = new
        at_exit { stack.stop } # also when the run dies before minitest's own hooks
        stack.start
        stack
      end
    end

    def self.stop
      @instance&.stop
    end

    def initialize
      @tmp = Dir.mktmpdir("jobd-ruby-test")
      @out = File.join(@tmp, "out")
      @app = File.join(@tmp, "app")
      @secret = SecureRandom.hex(16)
      @children = []
    end

    def jobd_url
      "http://127.0.0.1:#{@jobd_port}"
    end

    def start
      FileUtils.mkdir_p(@out)
      FileUtils.cp_r(File.join(GEM_ROOT, "test", "rails_app"), @app)
      redis, @redis_port = JobdTest.start_redis(File.join(@tmp, "redis"))
      @children << redis
      @rails_port = JobdTest.free_port
      config = JSON.parse(File.read(File.join(GEM_ROOT, "test", "jobd.json")))
      config["handlers"]["active_job"]["url"] = "http://127.0.0.1:#{@rails_port}/jobd/perform"
      jobd, @jobd_port = JobdTest.start_jobd(@tmp, config, env: {
                                               "REDIS_URL" => "redis://127.0.0.1:#{@redis_port}/0",
                                               "JOBD_WEBHOOK_SECRET" => @secret
                                             })
      @children << jobd
      @jobd = jobd
      @rails = Child.new("puma", ["puma", "--environment", "production", "--threads", "4:4",
                                  "--bind", "tcp://127.0.0.1:#{@rails_port}", "config.ru"],
                         log: File.join(@tmp, "puma.log"), env: app_env("rails-puma.log"), chdir: @app)
      @children << @rails
      JobdTest.wait_until("puma on port #{@rails_port}", timeout: 60) do
        raise "puma exited: #{@rails.tail}" unless @rails.alive?

        JobdTest.http("GET", @rails_port, "/up").first == 200
      end
    rescue StandardError
      stop
      raise
    end

    # The environment the Rails app reads, in puma and in this process.
    def app_env(log_name)
      {
        "RAILS_ENV" => "production",
        "JOBD_URL" => jobd_url,
        "JOBD_WEBHOOK_SECRET" => @secret,
        "JOBD_TEST_OUT" => @out,
        "JOBD_GEM_LIB" => File.join(GEM_ROOT, "lib"),
        "JOBD_TEST_RAILS_LOG" => File.join(@tmp, log_name)
      }
    end

    # Boots the same Rails app in this process, the enqueuing side (as a web
    # process or console would be); puma is the performing side.
    def boot_rails_here
      return if @booted

      app_env("rails-test.log").each { |k, v| ENV[k] = v }
      require File.join(@app, "config", "environment")
      @booted = true
    end

    def jobd_log
      @jobd.tail(40)
    end

    def stop
      @children.reverse_each(&:stop)
      @children.clear
      FileUtils.rm_rf(@tmp) unless ENV["JOBD_TEST_KEEP"]
    end
  end

  # A tiny real HTTP/1.1 server in this process, for what a real jobd cannot
  # be made to do on demand: count the connections and requests a client
  # makes, answer a chosen status, close a kept-alive connection, or never
  # answer. The block gets the request count and returns
  # [status, headers, body], :close (close without answering) or :hang.
  class TinyServer
    attr_reader :port

    # tls: an OpenSSL::SSL::SSLContext to serve https with, or nil.
    def initialize(tls: nil, &responder)
      tcp = TCPServer.new("127.0.0.1", 0)
      @port = tcp.addr[1]
      @tls = !tls.nil?
      @server = tls ? OpenSSL::SSL::SSLServer.new(tcp, tls) : tcp
      @responder = responder
      @lock = Mutex.new
      @connections = 0
      @requests = 0
      @threads = []
      @acceptor = Thread.new { accept_loop }
    end

    def connections
      @lock.synchronize { @connections }
    end

    def requests
      @lock.synchronize { @requests }
    end

    def url
      "#{@tls ? 'https' : 'http'}://127.0.0.1:#{@port}"
    end

    def stop
      @server.close
      @acceptor.join(2)
      @threads.each { |t| t.kill.join(2) }
    end

    private

    def accept_loop
      loop do
        begin
          sock = @server.accept
        rescue OpenSSL::SSL::SSLError
          next # a client that refused our certificate
        end
        @lock.synchronize { @connections += 1 }
        @threads << Thread.new(sock) { |s| serve(s) }
      end
    rescue IOError, SystemCallError
      nil
    end

    def serve(sock)
      loop do
        head = sock.gets("\r\n\r\n") or break
        length = head[/^content-length:\s*(\d+)/i, 1].to_i
        sock.read(length) if length.positive?
        n = @lock.synchronize { @requests += 1 }
        status, headers, body = @responder.call(n)
        break if status == :close
        next sleep(60) if status == :hang

        body ||= ""
        extra = (headers || {}).map { |k, v| "#{k}: #{v}\r\n" }.join
        sock.write("HTTP/1.1 #{status} X\r\nContent-Length: #{body.bytesize}\r\n#{extra}\r\n#{body}")
      end
    rescue IOError, SystemCallError, OpenSSL::SSL::SSLError
      nil
    ensure
      sock.close
    end
  end
end

module JobdTest
  module_function

  # A self-signed certificate for 127.0.0.1: [server SSLContext, client
  # SSLContext that trusts it and verifies the peer].
  def tls_contexts
    key = OpenSSL::PKey::RSA.new(2048)
    cert = OpenSSL::X509::Certificate.new
    cert.version = 2
    cert.serial = 1
    cert.subject = cert.issuer = OpenSSL::X509::Name.parse("/CN=127.0.0.1")
    cert.public_key = key.public_key
    cert.not_before = Time.now - 60
    cert.not_after = Time.now + 3600
    ext = OpenSSL::X509::ExtensionFactory.new(cert, cert)
    cert.add_extension(ext.create_extension("subjectAltName", "IP:127.0.0.1"))
    cert.add_extension(ext.create_extension("basicConstraints", "CA:TRUE", true))
    cert.sign(key, OpenSSL::Digest.new("SHA256"))
    server = OpenSSL::SSL::SSLContext.new
    server.cert = cert
    server.key = key
    store = OpenSSL::X509::Store.new
    store.add_cert(cert)
    client = OpenSSL::SSL::SSLContext.new
    client.set_params(verify_mode: OpenSSL::SSL::VERIFY_PEER, cert_store: store)
    [server, client]
  end
end

Minitest.after_run { JobdTest::Stack.stop }
