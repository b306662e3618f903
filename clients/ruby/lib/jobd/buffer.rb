require "logger"
require "jobd/errors"

module Jobd
  # The opt-in buffered mode: #push returns at once, and one background thread
  # hands everything buffered so far to jobd with Client#enqueue_batch, one
  # request per queue and batch, while the next batch fills (async-job's
  # Aggregate, on the client side).
  #
  # The guarantee is weaker than a direct enqueue: when #push returns, the job
  # is only in this process's memory. If the process is killed (SIGKILL, OOM,
  # crash) before the batch is sent, those jobs are lost. At a normal exit the
  # buffer is flushed (#shutdown, registered with at_exit) for up to
  # `flush_timeout` seconds; what is still unsent then is logged as lost. A job
  # jobd refuses with a 4xx (e.g. 422 for one job of a batch) is logged and
  # dropped, since the caller has returned already. While jobd answers 503 or
  # cannot be reached, batches are retried with backoff (0.1 s up to 5 s), and
  # once `max_buffer` jobs wait, #push answers false so the caller submits
  # directly (and gets the error itself).
  #
  # Every job must carry an "id" so that resending a batch whose answer was
  # lost stores nothing twice.
  class Buffer
    # client: a Jobd::Client. max_buffer: jobs held at most. max_batch: jobs per
    # request (jobd's limits.max_batch is 1000 by default). flush_timeout:
    # seconds given to sending at exit. logger: a Logger (default: Rails.logger
    # in Rails, else $stderr).
    def initialize(client, max_buffer: 10_000, max_batch: 1000, flush_timeout: 10, logger: nil)
      @client = client
      @max_buffer = max_buffer
      @max_batch = max_batch
      @flush_timeout = flush_timeout
      @logger = logger
      @lock = Mutex.new
      @wakeup = ConditionVariable.new
      @drained = ConditionVariable.new
      @give_up_at = nil
      @sent = 0
      @dropped = 0
      @lost = 0
      reset
      at_exit { shutdown }
    end

    # Jobs jobd has accepted, jobs it refused (4xx, logged) and jobs still
    # unsent when #shutdown gave up (logged).
    attr_reader :sent, :dropped, :lost

    # Adds a job (a Hash for Client#enqueue_batch, with an "id") for `queue`.
    # Returns true, or false when the buffer is full (nothing was added).
    def push(queue, job)
      @lock.synchronize do
        reset if @pid != Process.pid
        return false if @pending.size + @in_flight >= @max_buffer

        @pending << [queue, job]
        @thread ||= Thread.new { run }
        @wakeup.signal
      end
      true
    end

    # Jobs pushed but not yet accepted by jobd.
    def size
      @lock.synchronize { @pid == Process.pid ? @pending.size + @in_flight : 0 }
    end

    # Waits until every job pushed so far is sent (or dropped), at most
    # `timeout` seconds. Returns true when nothing is left.
    def flush(timeout = @flush_timeout)
      deadline = now + timeout
      @lock.synchronize do
        return true if @pid != Process.pid

        until @pending.empty? && @in_flight.zero?
          left = deadline - now
          return false unless left.positive?

          @drained.wait(@lock, left)
        end
      end
      true
    end

    # Flushes for up to `flush_timeout`, then gives up and logs what is lost.
    # Runs at exit; the buffer keeps working if called earlier.
    def shutdown
      @lock.synchronize { @give_up_at = now + @flush_timeout }
      return if flush(@flush_timeout + 1)

      n = size
      @lost += n
      logger.error("jobd: #{n} buffered jobs were not handed to jobd before exit and are lost") if n.positive?
    end

    private

    # (Re)starts empty: at creation, and in a forked child, whose parent still
    # owns the jobs buffered before the fork (the sending thread is not forked).
    def reset
      @pid = Process.pid
      @pending = []
      @in_flight = 0
      @thread = nil
    end

    def now
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    def logger
      @logger ||= (defined?(::Rails) && ::Rails.respond_to?(:logger) && ::Rails.logger) || Logger.new($stderr)
    end

    def run
      loop do
        batch = @lock.synchronize do
          @wakeup.wait(@lock) while @pending.empty?
          taken = @pending.shift(@max_batch)
          @in_flight = taken.size
          taken
        end
        begin
          batch.group_by(&:first).each { |queue, items| deliver(queue, items.map(&:last)) }
        rescue StandardError => e
          @lost += batch.size
          logger.error("jobd: buffered batch of #{batch.size} jobs lost: #{e.class}: #{e.message}")
        ensure
          @lock.synchronize do
            @in_flight = 0
            @drained.broadcast
          end
        end
      end
    end

    # Sends `jobs` to `queue` until jobd has them, refuses them, or shutdown gives up.
    def deliver(queue, jobs)
      backoff = 0.1
      until jobs.empty?
        begin
          @client.enqueue_batch(queue, jobs)
          @sent += jobs.size
          return
        rescue ClientError => e
          if (e.status == 413 || e.code == "batch_too_large") && jobs.size > 1
            half = jobs.size / 2
            deliver(queue, jobs[0, half])
            deliver(queue, jobs[half..])
            return
          end
          bad = e.index.is_a?(Integer) && e.index < jobs.size ? [jobs.delete_at(e.index)] : jobs.slice!(0..)
          @dropped += bad.size
          logger.error("jobd: refused #{bad.size} buffered job(s) of queue #{queue} " \
                       "(ids #{bad.map { |j| j['id'] }.first(5).join(', ')}): #{e.code}: #{e.message}")
        rescue Error => e
          give_up_at = @lock.synchronize { @give_up_at }
          if give_up_at && now + backoff > give_up_at
            @lost += jobs.size
            logger.error("jobd: #{jobs.size} buffered jobs of queue #{queue} lost at exit: #{e.message}")
            return
          end
          logger.warn("jobd: buffered batch of #{jobs.size} jobs not accepted yet (#{e.message}); retrying")
          sleep(backoff) # retry pacing while jobd is unreachable, not synchronisation
          backoff = [backoff * 2, 5].min
        end
      end
    end
  end
end
