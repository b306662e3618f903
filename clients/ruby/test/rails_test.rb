require_relative "test_helper"

# The ActiveJob adapter and the Rack performer in a real Rails 6.1 app: this
# process boots the app and enqueues (as a web process would), puma serves the
# same app on a loopback port and performs, jobd (with its Redis) carries the
# jobs between them and calls the app's /jobd/perform webhook.
class RailsTest < Minitest::Test
  def setup
    @stack = JobdTest::Stack.instance
    @stack.boot_rails_here
    @client = Jobd::Client.new(url: @stack.jobd_url)
  end

  def teardown
    @client.close
  end

  def token
    "t#{SecureRandom.hex(6)}"
  end

  def result(name)
    path = File.join(@stack.out, "#{name}.json")
    File.exist?(path) ? JSON.parse(File.read(path)) : nil
  end

  def wait_result(name, timeout: 20)
    JobdTest.wait_until("#{name}.json written by a job", timeout: timeout) { result(name) }
  end

  def wait_state(queue, id, state, timeout: 20)
    JobdTest.wait_until("job #{id} #{state}", timeout: timeout) do
      view = @client.job(queue, id)
      view if view["state"] == state
    end
  rescue Minitest::Assertion
    flunk "job #{id} never became #{state}: #{@client.job(queue, id).inspect}\njobd log:\n#{@stack.jobd_log}"
  end

  def test_perform_later_runs_in_the_rails_server_through_redis
    job = MyJob.perform_later(1, "x")
    assert_equal job.job_id, job.provider_job_id
    done = wait_result(job.job_id)
    assert_equal [1, "x"], done["args"]
    assert_equal @stack.rails.pid, done["pid"], "performed by the puma process"
    assert_equal job.provider_job_id, done["provider_job_id"]
    view = wait_state("default", job.provider_job_id, "succeeded")
    assert_equal "active_job", view["type"]
    assert_equal "MyJob", view["args"]["job_class"]
    assert_equal 1, view["attempts"]
    assert_equal ["redis"], @client.queue("default")["dequeue"]
  end

  def test_wait_runs_no_earlier_than_asked
    t0 = Time.now.to_f
    job = MyJob.set(wait: 2.seconds).perform_later(2, "later")
    assert_equal "scheduled", @client.job("default", job.provider_job_id)["state"]
    done = wait_result(job.job_id)
    assert_operator done["at"] - t0, :>=, 2.0
  end

  def test_queue_option_reaches_the_inline_queue
    job = MyJob.set(queue: "local").perform_later(3, "inline")
    assert_equal "local", wait_result(job.job_id)["queue"]
    wait_state("local", job.provider_job_id, "succeeded")
    assert_raises(Jobd::NotFound) { @client.job("default", job.provider_job_id) }
    assert_equal ["inline"], @client.queue("local")["dequeue"]
  end

  def test_priority_is_kept_in_the_payload
    job = MyJob.set(priority: 7, wait: 1.hour).perform_later(4, "prio")
    assert_equal 7, @client.job("default", job.provider_job_id)["args"]["priority"]
    @client.cancel("default", job.provider_job_id)
  end

  def test_a_job_that_raises_once_succeeds_on_jobds_retry
    t = token
    job = FlakyJob.perform_later(t)
    wait_result(t)
    view = wait_state("default", job.provider_job_id, "succeeded")
    assert_equal 2, view["attempts"]
  end

  def test_a_job_that_always_raises_ends_dead_with_the_exception
    t = token
    job = AlwaysFailJob.perform_later(t)
    view = wait_state("default", job.provider_job_id, "dead")
    assert_equal 2, view["max_attempts"], "from jobd_options"
    assert_equal 2, view["attempts"]
    assert_includes view["last_error"], "HTTP 500"
    assert_includes view["last_error"], "AlwaysFailJob::Boom: always fails (#{t})"
    assert_equal 2, Dir[File.join(@stack.out, "#{t}.*.attempt")].size
    assert_includes @client.dead("default", limit: 1000)["jobs"].map { |j| j["id"] }, job.provider_job_id
  end

  def test_retry_on_reenqueues_a_new_jobd_job
    t = token
    job = RetryOnJob.perform_later(t)
    done = wait_result(t)
    assert_equal 2, done["executions"]
    assert_equal "#{job.job_id}.1", done["provider_job_id"]
    assert_equal 1, wait_state("default", job.job_id, "succeeded")["attempts"]
    assert_equal 1, wait_state("default", "#{job.job_id}.1", "succeeded")["attempts"]
  end

  def test_discard_on_ends_the_jobd_job_as_succeeded
    t = token
    job = DiscardJob.perform_later(t)
    view = wait_state("default", job.provider_job_id, "succeeded")
    assert_equal 1, view["attempts"]
    assert File.exist?(File.join(@stack.out, "#{t}.ran"))
  end

  # What Rails 7.1's perform_all_later calls; Rails 6.1 has no caller for it.
  def test_enqueue_all_submits_one_batch_per_queue
    jobs = [MyJob.new(7, "a"), MyJob.new(8, "b"), MyJob.new(9, "c")]
    jobs[1].queue_name = "local"
    jobs[2].scheduled_at = Time.now.to_f + 3600
    assert_equal 3, ActiveJob::Base.queue_adapter.enqueue_all(jobs)
    assert_equal [7, "a"], wait_result(jobs[0].job_id)["args"]
    assert_equal "local", wait_result(jobs[1].job_id)["queue"]
    assert_equal jobs.map(&:job_id), jobs.map(&:provider_job_id)
    assert_equal "scheduled", @client.job("default", jobs[2].job_id)["state"]
    @client.cancel("default", jobs[2].job_id)
  end

  def test_enqueue_errors_reach_the_caller
    err = assert_raises(Jobd::NotFound) { MyJob.set(queue: "no_such_queue").perform_later(5, "x") }
    assert_equal "unknown_queue", err.code
  end

  # What jobd's webhook would send for `job`, signed at `stamp` with `secret`.
  def signed(job, stamp: Time.now.to_i, secret: @stack.secret)
    body = JSON.generate("id" => job.job_id, "queue" => "default", "type" => "active_job", "args" => job.serialize,
                         "attempt" => 1, "scheduled_at" => nil, "created_at" => Time.now.utc.iso8601(3))
    sig = OpenSSL::HMAC.hexdigest("SHA256", secret, "#{stamp}.#{body}")
    [body, "t=#{stamp},v1=#{sig}"]
  end

  def post_perform(body, signature)
    headers = { "Content-Type" => "application/json" }
    headers["Jobd-Signature"] = signature if signature
    JobdTest.http("POST", @stack.rails_port, "/jobd/perform", body: body, headers: headers)
  end

  def test_performer_refuses_bad_signatures_and_old_timestamps
    job = MyJob.new(6, "forged")
    body, good = signed(job)
    _, wrong_secret = signed(job, secret: "not-the-secret")
    old_body, old = signed(job, stamp: Time.now.to_i - 301)
    # (a margin: seconds pass between signing and the check)
    future_body, future = signed(job, stamp: Time.now.to_i + 330)
    assert_equal 401, post_perform(body, nil).first
    assert_equal 401, post_perform(body, wrong_secret).first
    assert_equal 401, post_perform(body, good.sub(/v1=\h/) { |m| m[-1] == "0" ? "v1=1" : "v1=0" }).first
    assert_equal 401, post_perform("#{body} ", good).first, "signature of another body"
    assert_equal 401, post_perform(old_body, old).first
    assert_equal 401, post_perform(future_body, future).first
    assert_nil result(job.job_id), "nothing performed"

    # The same request, correctly signed and fresh, is performed.
    assert_equal 204, post_perform(body, good).first
    assert_equal [6, "forged"], wait_result(job.job_id)["args"]
  end

  def test_performer_answers_500_with_the_exception_cut_to_1_kib
    body, sig = signed(LongErrorJob.new(3000))
    status, text = post_perform(body, sig)
    text = text.force_encoding(Encoding::UTF_8)
    assert_equal 500, status
    assert text.start_with?("LongErrorJob::Long: éé"), text[0, 40]
    assert_operator text.bytesize, :<=, 1024
    assert_operator text.bytesize, :>=, 1022 # cut on a character boundary
    assert text.valid_encoding?
  end

  def test_performer_answers_4xx_to_what_retrying_cannot_fix
    body = JSON.generate("id" => "x", "args" => { "no" => "job_class" })
    stamp = Time.now.to_i
    sig = "t=#{stamp},v1=#{OpenSSL::HMAC.hexdigest('SHA256', @stack.secret, "#{stamp}.#{body}")}"
    assert_equal 422, post_perform(body, sig).first
    assert_equal 405, JobdTest.http("GET", @stack.rails_port, "/jobd/perform").first
  end

  # 1,000 perform_later calls from this one thread, to the paused queue "bulk"
  # (so only enqueueing is measured): directly, then in the buffered mode.
  def test_throughput_of_perform_later
    @client.pause("bulk")
    50.times { |i| NoopJob.perform_later(i) } # warm-up: first connection, ActiveJob's lazy loading
    before = @client.queue("bulk")["counts"]["enqueued"]
    t0 = JobdTest.now
    1000.times { |i| NoopJob.perform_later(i) }
    direct = 1000 / (JobdTest.now - t0)
    assert_equal before + 1000, @client.queue("bulk")["counts"]["enqueued"]

    adapter = ActiveJob::QueueAdapters::JobdAdapter.new(buffered: true)
    original = NoopJob.queue_adapter
    NoopJob.queue_adapter = adapter
    begin
      50.times { |i| NoopJob.perform_later(i) }
      assert adapter.buffer.flush(30), "warm-up flushed"
      before += 50
      t0 = JobdTest.now
      1000.times { |i| NoopJob.perform_later(i) }
      returned = JobdTest.now - t0
      assert adapter.buffer.flush(30), "buffer flushed"
      buffered = 1000 / (JobdTest.now - t0)
    ensure
      NoopJob.queue_adapter = original
    end
    assert_equal 1050, adapter.buffer.sent
    assert_equal before + 2000, @client.queue("bulk")["counts"]["enqueued"]
    line = format("perform_later x1000 from one thread: %<d>d jobs/s direct, %<b>d jobs/s buffered " \
                  "(%<r>d/s returned to the caller)", d: direct, b: buffered, r: 1000 / returned)
    puts "\n#{line}"
    File.write(ENV["JOBD_RUBY_THROUGHPUT"], "#{line}\n") if ENV["JOBD_RUBY_THROUGHPUT"]
    # A sanity floor only; the figures are reported. JOBD_RUBY_MIN_RATE asks for more.
    floor = Float(ENV.fetch("JOBD_RUBY_MIN_RATE", "200"))
    assert_operator direct, :>=, floor
    assert_operator buffered, :>=, floor
  end

  # The buffered mode flushes at exit: a process that enqueues and exits at
  # once still hands every job to jobd. (ActiveJob without Rails, configured
  # with Jobd.configure and the JOBD_URL environment variable.)
  def test_buffered_mode_flushes_at_exit
    script = <<~RUBY
      require "active_job"
      require "jobd/active_job"
      ActiveJob::Base.logger = Logger.new(nil)
      class ExitJob < ActiveJob::Base
        queue_as "bulk"
      end
      Jobd.configure { |c| c.buffered = true } # and jobd's address from JOBD_URL
      ExitJob.queue_adapter = :jobd
      puts Array.new(300) { ExitJob.perform_later.provider_job_id }
    RUBY
    @client.pause("bulk") # ExitJob exists only here: the app must not try to run these
    out = IO.popen([{ "JOBD_URL" => @stack.jobd_url }, RbConfig.ruby, "-I", File.join(GEM_ROOT, "lib"), "-e", script],
                   &:read)
    assert $?.success?
    ids = out.split
    assert_equal 300, ids.uniq.size
    ids.each { |id| assert_equal "ExitJob", @client.job("bulk", id)["args"]["job_class"] }
  end
end
