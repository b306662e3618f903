require_relative "test_helper"
require "jobd/buffer"
require "logger"
require "stringio"

# Jobd::Buffer, the sending side of the buffered mode, against a real jobd
# and against a tiny server that answers 503 first.
class BufferTest < Minitest::Test
  def setup
    @log = StringIO.new
    @logger = Logger.new(@log)
  end

  def test_sends_in_batches_and_drops_only_the_job_jobd_refuses
    client = Jobd::Client.new(url: JobdTest::Stack.instance.jobd_url)
    buffer = Jobd::Buffer.new(client, logger: @logger, max_batch: 50)
    ids = Array.new(120) { |i| "buf-#{SecureRandom.hex(4)}-#{i}" }
    ids.each_with_index do |id, i|
      job = { "type" => "noop", "id" => id, "delay" => 3600 }
      job["max_attempts"] = 0 if i == 70 # invalid: jobd refuses the whole batch, naming its index
      assert buffer.push("default", job)
    end
    assert buffer.flush(20)
    assert_equal [119, 1, 0], [buffer.sent, buffer.dropped, buffer.lost]
    ids.each_with_index do |id, i|
      next assert_raises(Jobd::NotFound) { client.job("default", id) } if i == 70

      assert_equal "scheduled", client.job("default", id)["state"]
    end
    assert_includes @log.string, ids[70]
    assert_includes @log.string, "max_attempts"
  end

  def test_retries_while_jobd_answers_503_and_pushes_fail_when_full
    server = JobdTest::TinyServer.new do |n|
      if n <= 2
        [503, { "Retry-After" => "0" }, '{"error":{"code":"unavailable","message":"down"}}']
      else
        [202, {}, '{"jobs":[]}']
      end
    end
    client = Jobd::Client.new(url: server.url, retries: 0)
    buffer = Jobd::Buffer.new(client, logger: @logger, max_buffer: 5)
    5.times { |i| assert buffer.push("q", { "type" => "noop", "id" => "j#{i}" }) }
    refute buffer.push("q", { "type" => "noop", "id" => "j5" }), "full: the caller submits directly"
    assert buffer.flush(20)
    assert_equal 5, buffer.sent
    assert_equal 3, server.requests
    assert_includes @log.string, "retrying"
  ensure
    server&.stop
  end
end
