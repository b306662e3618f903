require_relative "test_helper"

# Jobd::Client against a real jobd (the shared stack's, and jobd processes of
# its own where a test stops Redis or turns auth on), plus a tiny local HTTP
# server where a test needs exact request and connection counts.
class ClientTest < Minitest::Test
  def stack
    JobdTest::Stack.instance
  end

  def client(**opts)
    @clients ||= []
    (@clients << Jobd::Client.new(url: stack.jobd_url, **opts)).last
  end

  def teardown
    @clients&.each(&:close)
    @servers&.each(&:stop)
  end

  def tiny_server(**opts, &responder)
    @servers ||= []
    (@servers << JobdTest::TinyServer.new(**opts, &responder)).last
  end

  def uid(name)
    "#{name}-#{SecureRandom.hex(6)}"
  end

  def wait_state(c, queue, id, state, timeout: 20)
    JobdTest.wait_until("job #{id} #{state}", timeout: timeout) do
      view = c.job(queue, id)
      view if view["state"] == state
    end
  end

  def test_enqueue_returns_the_view_and_the_job_runs
    c = client
    view = c.enqueue("local", "noop", { "n" => 1 })
    assert_match(/\A[0-9A-Z]{26}\z/, view["id"])
    assert_equal "local", view["queue"]
    assert_equal({ "n" => 1 }, view["args"])
    done = wait_state(c, "local", view["id"], "succeeded")
    assert_equal 1, done["attempts"]
  end

  def test_enqueue_passes_every_option
    c = client
    at = Time.now + 3600
    view = c.enqueue("local", "noop", [1, "x"], id: uid("opts"), scheduled_at: at, max_attempts: 7, timeout: 12.5)
    assert_equal "scheduled", view["state"]
    assert_equal 7, view["max_attempts"]
    assert_equal 12.5, view["timeout"]
    assert_equal at.getutc.strftime("%Y-%m-%dT%H:%M:%S.%LZ"), view["scheduled_at"]
    delayed = c.enqueue("local", "noop", nil, delay: 3600)
    assert_equal "scheduled", delayed["state"]
    assert_nil delayed["args"]
  end

  def test_enqueue_with_the_same_id_is_idempotent
    c = client
    id = uid("same")
    first = c.enqueue("default", "noop", { "a" => 1 }, id: id, delay: 3600)
    again = c.enqueue("default", "noop", { "a" => 2 }, id: id, delay: 3600)
    assert_equal first["created_at"], again["created_at"]
    assert_equal({ "a" => 1 }, again["args"], "a replay answers the existing job")
  end

  def test_enqueue_batch_returns_views_and_marks_replays
    c = client
    id = uid("batch")
    views = c.enqueue_batch("local", [{ type: "noop", id: id, delay: 3600 }, { "type" => "noop", "args" => [2] }])
    assert_equal 2, views.size
    assert_equal id, views[0]["id"]
    assert_equal [2], views[1]["args"]
    replay = c.enqueue_batch("local", [{ type: "noop", id: id }])
    assert_equal true, replay[0]["replayed"]
    assert_raises(ArgumentError) { c.enqueue_batch("local", [{ type: "noop", tpye: "x" }]) }
  end

  def test_job_jobs_cancel
    c = client
    id = uid("cancel")
    c.enqueue("default", "noop", nil, id: id, delay: 3600)
    assert_equal "scheduled", c.job("default", id)["state"]
    listed = c.jobs("default", state: "scheduled", limit: 1000)
    assert_includes listed["jobs"].map { |j| j["id"] }, id
    assert listed.key?("next_cursor")
    assert_equal "cancelled", c.cancel("default", id)["state"]
    err = assert_raises(Jobd::Conflict) { c.cancel("default", id) }
    assert_equal 409, err.status
    assert_equal "conflict", err.code
  end

  def test_queues_queue_pause_resume
    c = client
    names = c.queues.map { |q| q["name"] }
    assert_equal %w[bulk default local plain], names.sort
    assert_equal "plain", c.queue("plain")["name"]
    assert_equal true, c.pause("plain")["paused"]
    assert_equal true, c.queue("plain")["paused"]
    assert_equal false, c.resume("plain")["paused"]
  end

  def test_dead_retry_dead_delete_dead
    c = client
    id = uid("dead")
    c.enqueue("local", "fail", { "message" => "no luck" }, id: id, max_attempts: 1)
    dead = wait_state(c, "local", id, "dead")
    assert_includes dead["last_error"], "no luck"
    listed = c.dead("local", limit: 100)
    assert_includes listed["jobs"].map { |j| j["id"] }, id
    again = c.retry_dead("local", id)
    assert_equal 0, again["attempts"]
    assert_includes %w[enqueued running dead], again["state"]
    wait_state(c, "local", id, "dead")
    assert_equal true, c.delete_dead("local", id)
    refute_includes c.dead("local", limit: 100)["jobs"].map { |j| j["id"] }, id
  end

  def test_errors_carry_code_message_and_field
    c = client
    err = assert_raises(Jobd::InvalidJob) { c.enqueue("local", "noop", nil, max_attempts: 0) }
    assert_equal 422, err.status
    assert_equal "invalid_job", err.code
    assert_equal "max_attempts", err.field
    assert_nil err.index
    refute_empty err.message

    err = assert_raises(Jobd::InvalidJob) { c.enqueue("local", "no_such_handler") }
    assert_equal "type", err.field

    err = assert_raises(Jobd::NotFound) { c.enqueue("nope", "noop") }
    assert_equal [404, "unknown_queue"], [err.status, err.code]
    err = assert_raises(Jobd::NotFound) { c.job("local", "no-such-job-#{SecureRandom.hex(4)}") }
    assert_equal "unknown_job", err.code
    assert_kind_of Jobd::ClientError, err
  end

  def test_batch_errors_carry_the_index
    c = client
    id = uid("atomic")
    err = assert_raises(Jobd::InvalidJob) do
      c.enqueue_batch("local", [{ type: "noop", id: id }, { type: "noop" }, { type: "noop", delay: -1 }])
    end
    assert_equal 2, err.index
    assert_equal "delay", err.field
    assert_raises(Jobd::NotFound) { c.job("local", id) } # all or nothing
  end

  def test_connection_errors
    port = JobdTest.free_port
    c = Jobd::Client.new(url: "http://127.0.0.1:#{port}", timeout: 2)
    err = assert_raises(Jobd::ConnectionError) { c.queues }
    assert_match(/cannot connect/, err.message)

    server = tiny_server { :hang }
    c = Jobd::Client.new(url: server.url, timeout: 0.5)
    t0 = JobdTest.now
    assert_raises(Jobd::ConnectionError) { c.queues }
    assert_operator JobdTest.now - t0, :>=, 0.45
    assert_operator JobdTest.now - t0, :<, 5
  end

  def test_keeps_one_connection_per_thread
    c = client
    50.times { |i| c.enqueue("local", "noop", [i]) }
    assert_equal 1, c.connections_opened

    threads = Array.new(4) { |t| Thread.new { 25.times { |i| c.enqueue("local", "noop", [t, i]) } } }
    threads.each(&:join)
    assert_operator c.connections_opened, :<=, 4
  end

  def test_connection_reuse_seen_by_the_server
    server = tiny_server { [202, { "Content-Type" => "application/json" }, '{"id":"x"}'] }
    c = Jobd::Client.new(url: server.url)
    20.times { c.enqueue("q", "noop") }
    assert_equal 20, server.requests
    assert_equal 1, server.connections
  end

  def test_https_with_a_verified_certificate
    server_ctx, client_ctx = JobdTest.tls_contexts
    server = tiny_server(tls: server_ctx) { [200, {}, '{"queues":[{"name":"tls"}]}'] }
    c = Jobd::Client.new(url: server.url, ssl_context: client_ctx)
    3.times { assert_equal ["tls"], c.queues.map { |q| q["name"] } }
    assert_equal 1, server.connections
    # The default context trusts only the system's certificates.
    err = assert_raises(Jobd::ConnectionError) { Jobd::Client.new(url: server.url).queues }
    assert_match(/TLS|certificate/, err.message)
  end

  def test_reconnects_when_the_server_closed_an_idle_connection
    # The server closes every connection after its answer (without saying
    # so), as jobd does with connections idle for 30 s.
    server = tiny_server { |n| n.odd? ? [200, {}, '{"queues":[]}'] : :close }
    c = Jobd::Client.new(url: server.url)
    assert_equal [], c.queues
    assert_equal [], c.queues # the reused connection is dead: resent on a new one
    assert_equal 3, server.requests
    assert_equal 2, server.connections
    # A POST without an id is not resent: jobd may have stored it already.
    assert_raises(Jobd::ConnectionError) { c.enqueue("q", "noop") }
  end

  def test_retries_503_as_told_by_retry_after_then_raises
    server = tiny_server { [503, { "Retry-After" => "0.2" }, '{"error":{"code":"unavailable","message":"store down"}}'] }
    waits = []
    c = Jobd::Client.new(url: server.url, retries: 3, on_retry: ->(_n, wait, _e) { waits << wait })
    t0 = JobdTest.now
    err = assert_raises(Jobd::Unavailable) { c.enqueue("q", "noop", nil, id: "a") }
    assert_operator JobdTest.now - t0, :>=, 0.6
    assert_equal 4, server.requests
    assert_equal [0.2, 0.2, 0.2], waits
    assert_equal [503, "unavailable", 4, 0.2], [err.status, err.code, err.attempts, err.retry_after]
  end

  def test_never_retries_a_4xx
    server = tiny_server { [429, { "Retry-After" => "0" }, '{"error":{"code":"slow_down","message":"no"}}'] }
    c = Jobd::Client.new(url: server.url, retries: 5)
    err = assert_raises(Jobd::ClientError) { c.enqueue("q", "noop") }
    assert_equal [429, "slow_down", 1], [err.status, err.code, err.attempts]
    assert_equal 1, server.requests

    # and not jobd's own 4xx either (one request, at once)
    jobd = client(retries: 5)
    t0 = JobdTest.now
    assert_raises(Jobd::NotFound) { jobd.enqueue("nope", "noop") }
    assert_operator JobdTest.now - t0, :<, 1.0, "a retry would wait 1 s first"
  end

  # jobd itself answers 503 (Retry-After: 1) while its Redis is down; the
  # client waits and retries, and succeeds once Redis is back.
  def test_503_from_a_real_jobd_whose_redis_is_down
    dir = File.join(stack.tmp, "outage")
    redis, redis_port = JobdTest.start_redis(File.join(dir, "redis"))
    jobd, jobd_port = JobdTest.start_jobd(dir, { "workers" => 0, "queues" => { "plain" => { "dequeue" => ["redis"] } } },
                                          env: { "REDIS_URL" => "redis://127.0.0.1:#{redis_port}/0" })
    url = "http://127.0.0.1:#{jobd_port}"
    begin
      redis.stop
      JobdTest.wait_until("jobd to notice Redis is down") { JobdTest.http("GET", jobd_port, "/readyz").first == 503 }
      retries = []
      c = Jobd::Client.new(url: url, retries: 2, on_retry: ->(n, wait, e) { retries << [n, wait, e.status] })
      t0 = JobdTest.now
      err = assert_raises(Jobd::Unavailable) { c.enqueue("plain", "noop", nil, id: "outage-1") }
      assert_operator JobdTest.now - t0, :>=, 2.0, "two waits of Retry-After: 1"
      assert_equal [[1, 1.0, 503], [2, 1.0, 503]], retries
      assert_equal [3, 1.0], [err.attempts, err.retry_after]

      # Redis comes back while the client is waiting between retries.
      c = Jobd::Client.new(url: url, retries: 20, on_retry: ->(*) { retries << :again })
      retries.clear
      restarter = Thread.new do
        JobdTest.wait_until("a first 503 retry", timeout: 10) { !retries.empty? }
        redis, = JobdTest.start_redis(File.join(dir, "redis"), port: redis_port)
      end
      view = c.enqueue("plain", "noop", nil, id: "outage-2")
      restarter.join
      assert_equal "enqueued", view["state"]
      refute_empty retries
    ensure
      jobd.stop
      redis.stop
    end
  end

  def test_token_auth
    dir = File.join(stack.tmp, "auth")
    jobd, port = JobdTest.start_jobd(dir, { "workers" => 0, "queues" => { "local" => { "dequeue" => ["inline"] } } },
                                     env: { "JOBD_API_TOKENS" => "s3cret-token" })
    begin
      err = assert_raises(Jobd::Unauthorized) { Jobd::Client.new(url: "http://127.0.0.1:#{port}").queues }
      assert_equal [401, "unauthorized"], [err.status, err.code]
      assert_raises(Jobd::Unauthorized) { Jobd::Client.new(url: "http://127.0.0.1:#{port}", token: "wrong").queues }
      c = Jobd::Client.new(url: "http://127.0.0.1:#{port}", token: "s3cret-token")
      assert_equal ["local"], c.queues.map { |q| q["name"] }
    ensure
      jobd.stop
    end
  end

  def test_gemspec_is_valid
    spec = Dir.chdir(GEM_ROOT) { Gem::Specification.load("jobd.gemspec") }
    assert spec.validate(false)
    assert_equal "jobd", spec.name
    assert_empty spec.runtime_dependencies
    %w[lib/jobd.rb lib/jobd/client.rb lib/jobd/active_job.rb lib/jobd/rack/performer.rb].each do |f|
      assert_includes spec.files, f
    end
  end
end
