require "json"
require "uri"
require "time"
require "jobd/version"
require "jobd/errors"
require "jobd/connection"

module Jobd
  # HTTP client of one jobd server. Thread-safe: connections are kept open in a
  # small pool and lent to one thread at a time, so N threads use at most N
  # connections and a single thread always reuses the same one.
  #
  # Every method returns jobd's JSON answer parsed into Hashes with String keys,
  # or raises a Jobd::Error (see errors.rb).
  class Client
    USER_AGENT = "jobd-ruby/#{VERSION}".freeze
    JOB_KEYS = %w[type args id delay scheduled_at max_attempts timeout].freeze

    # url:            "http://host:port" (https works too), optionally with a path prefix.
    # token:          bearer token (jobd's auth.tokens), or nil.
    # timeout:        seconds for a whole request (connect, send, answer).
    # retries:        how many times a 503 is retried before Unavailable is raised.
    # max_retry_wait: longest wait honoured from a Retry-After, in seconds.
    # pool_size:      idle connections kept open (more threads still work; the
    #                 extra connections are closed after use).
    # idle_timeout:   a connection idle this long is replaced rather than reused
    #                 (jobd closes idle connections after 30 s).
    # ssl_context:    OpenSSL::SSL::SSLContext for https (default: verify the peer
    #                 against the system's certificates).
    # on_retry:       called as on_retry.call(attempt, wait_seconds, error) before
    #                 each 503 retry (e.g. to log it).
    def initialize(url:, token: nil, timeout: 5, retries: 3, max_retry_wait: 30, pool_size: 5,
                   idle_timeout: 25, ssl_context: nil, on_retry: nil)
      uri = URI(url)
      raise ArgumentError, "jobd url must be http:// or https://, got #{url.inspect}" unless %w[http https].include?(uri.scheme)

      @host = uri.host
      @port = uri.port
      @prefix = uri.path.to_s.chomp("/")
      @timeout = timeout
      @retries = retries
      @max_retry_wait = max_retry_wait
      @pool_size = pool_size
      @idle_timeout = idle_timeout
      @on_retry = on_retry
      @ssl_context = uri.scheme == "https" ? (ssl_context || default_ssl_context) : nil
      host_header = uri.port == uri.default_port ? uri.host : "#{uri.host}:#{uri.port}"
      # The headers every request carries, built once.
      @fixed_headers = "Host: #{host_header}\r\nUser-Agent: #{USER_AGENT}\r\n"
      @fixed_headers += "Authorization: Bearer #{token}\r\n" if token && !token.empty?
      @fixed_headers.freeze
      @lock = Mutex.new
      @idle = []
      @pid = Process.pid
      @connections_opened = 0
    end

    # Connections this client has opened so far (1 for any number of calls from
    # one thread, unless the server closed one).
    attr_reader :connections_opened

    # Submits one job; returns its view ("id", "state", ...). `scheduled_at` is a
    # Time, a Numeric (Unix seconds) or an RFC 3339 String. Giving `id` makes the
    # call idempotent: a replay answers the existing job and enqueues nothing.
    def enqueue(queue, type, args = nil, id: nil, delay: nil, scheduled_at: nil, max_attempts: nil, timeout: nil)
      job = { "type" => type }
      job["args"] = args unless args.nil?
      job["id"] = id if id
      job["delay"] = delay if delay
      job["scheduled_at"] = self.class.time_text(scheduled_at) if scheduled_at
      job["max_attempts"] = max_attempts if max_attempts
      job["timeout"] = timeout if timeout
      submit(queue, JSON.generate(job), idempotent: !id.nil?)
    end

    # Submits jobs in one request, all or nothing. `jobs` is an Array of Hashes
    # with the keys of #enqueue (Symbol or String): type, args, id, delay,
    # scheduled_at, max_attempts, timeout. Returns the Array of job views (a
    # replayed one has "replayed" => true). A bad job raises InvalidJob with its
    # `index`, and nothing is enqueued.
    def enqueue_batch(queue, jobs)
      all_ids = !jobs.empty?
      list = jobs.map do |job|
        out = {}
        job.each do |key, value|
          key = key.to_s
          raise ArgumentError, "unknown job key #{key.inspect}" unless JOB_KEYS.include?(key)
          next if value.nil?

          out[key] = key == "scheduled_at" ? self.class.time_text(value) : value
        end
        all_ids &&= out.key?("id")
        out
      end
      submit(queue, JSON.generate(list), idempotent: all_ids)["jobs"]
    end

    # The job's view.
    def job(queue, id)
      call("GET", "/queues/#{seg(queue)}/jobs/#{seg(id)}")
    end

    # Lists a queue's jobs, newest first: {"jobs" => [...], "next_cursor" => String or nil}.
    def jobs(queue, state: nil, limit: nil, cursor: nil)
      call("GET", "/queues/#{seg(queue)}/jobs#{query(state: state, limit: limit, cursor: cursor)}")
    end

    # Cancels a scheduled, enqueued or retrying job; returns its view (Conflict otherwise).
    def cancel(queue, id)
      call("DELETE", "/queues/#{seg(queue)}/jobs/#{seg(id)}")
    end

    # Every queue's view (processors, paused, counts, totals), as an Array.
    def queues
      call("GET", "/queues")["queues"]
    end

    # One queue's view.
    def queue(name)
      call("GET", "/queues/#{seg(name)}")
    end

    # Stops workers from starting the queue's jobs (it still accepts them); returns the queue view.
    def pause(queue)
      call("POST", "/queues/#{seg(queue)}/pause")
    end

    # Undoes #pause; returns the queue view.
    def resume(queue)
      call("POST", "/queues/#{seg(queue)}/resume")
    end

    # Dead jobs, newest death first: {"jobs" => [...], "next_cursor" => String or nil}.
    def dead(queue, limit: nil, cursor: nil)
      call("GET", "/queues/#{seg(queue)}/dead#{query(limit: limit, cursor: cursor)}")
    end

    # Puts a dead job back to enqueued with its attempts reset; returns its view.
    def retry_dead(queue, id)
      call("POST", "/queues/#{seg(queue)}/dead/#{seg(id)}/retry", idempotent: false)
    end

    # Deletes a dead job; returns true.
    def delete_dead(queue, id)
      call("DELETE", "/queues/#{seg(queue)}/dead/#{seg(id)}")
      true
    end

    # Closes the idle connections (they are reopened on the next call).
    def close
      @lock.synchronize do
        @idle.each(&:close)
        @idle.clear
      end
    end

    # RFC 3339 text of a Time, Numeric (Unix seconds) or String (passed through).
    def self.time_text(value)
      case value
      when String then value
      when Numeric then time_text(Time.at(value))
      else value.getutc.strftime("%Y-%m-%dT%H:%M:%S.%LZ")
      end
    end

    private

    def submit(queue, body, idempotent:)
      call("POST", "/queues/#{seg(queue)}/jobs", body, idempotent: idempotent)
    end

    # Percent-encodes one path segment (queue names and ids are plain already;
    # anything else reaches jobd as its own 404 rather than a different path).
    def seg(value)
      value.to_s.b.gsub(/[^A-Za-z0-9._~:-]/) { |c| format("%%%02X", c.ord) }
    end

    def query(params)
      pairs = params.compact
      pairs.empty? ? "" : "?#{URI.encode_www_form(pairs)}"
    end

    # Sends one request, retrying 503 answers; returns the parsed body of a 2xx.
    def call(method, path, body = nil, idempotent: method != "POST")
      request = +"#{method} #{@prefix}#{path} HTTP/1.1\r\n#{@fixed_headers}"
      if body
        request << "Content-Type: application/json\r\nContent-Length: #{body.bytesize}\r\n\r\n" << body
      elsif method == "POST"
        request << "Content-Length: 0\r\n\r\n"
      else
        request << "\r\n"
      end
      attempt = 1
      loop do
        res = exchange(request, idempotent)
        return res.body.empty? ? nil : JSON.parse(res.body) if res.status < 300

        error = api_error(res, attempt)
        raise error unless res.status == 503 && attempt <= @retries

        wait = retry_wait(error.retry_after)
        @on_retry&.call(attempt, wait, error)
        sleep(wait) # the server asked for this pause; it is the retry policy, not synchronisation
        attempt += 1
      end
    end

    # Sends the request on a pooled connection. A reused connection the server
    # had closed is replaced and the request resent when resending is harmless.
    def exchange(request, idempotent)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + @timeout
      conn = checkout(deadline)
      begin
        res = conn.request(request, deadline)
      rescue Connection::Stale
        raise unless idempotent

        conn = open_connection(deadline)
        res = conn.request(request, deadline)
      end
      checkin(conn)
      res
    end

    def checkout(deadline)
      @lock.synchronize do
        if @pid != Process.pid
          # A forked child must not share its parent's sockets: forget them (not
          # close: closing a TLS socket would talk on the parent's connection).
          @idle = []
          @pid = Process.pid
        end
        while (conn = @idle.pop)
          return conn if conn.reusable?(@idle_timeout)

          conn.close
        end
      end
      open_connection(deadline)
    end

    def checkin(conn)
      return unless conn.reusable?(@idle_timeout)

      keep = @lock.synchronize { @pid == Process.pid && @idle.size < @pool_size && @idle.push(conn) }
      conn.close unless keep
    end

    def open_connection(deadline)
      left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
      raise ConnectionError, "timed out before connecting to jobd" unless left.positive?

      conn = Connection.new(@host, @port, connect_timeout: left, ssl_context: @ssl_context)
      @lock.synchronize { @connections_opened += 1 }
      conn
    end

    def api_error(res, attempt)
      err = begin
        JSON.parse(res.body)["error"]
      rescue JSON::ParserError, TypeError, NoMethodError
        nil
      end
      err = { "code" => "http_#{res.status}", "message" => "HTTP #{res.status}: #{res.body.byteslice(0, 200).scrub}" } unless err.is_a?(Hash)
      Jobd.error_class_for(res.status).new(
        status: res.status, code: err["code"], message: err["message"].to_s,
        field: err["field"], index: err["index"],
        retry_after: parse_retry_after(res.headers["retry-after"]), attempts: attempt
      )
    end

    # Seconds from a Retry-After header (delta seconds or an HTTP date), or nil.
    def parse_retry_after(value)
      return nil if value.nil? || value.empty?
      return value.to_f if value.match?(/\A\d+(\.\d+)?\z/)

      [Time.httpdate(value) - Time.now, 0].max
    rescue ArgumentError
      nil
    end

    def retry_wait(retry_after)
      [retry_after || 1, @max_retry_wait].min
    end

    def default_ssl_context
      ctx = OpenSSL::SSL::SSLContext.new
      ctx.set_params(verify_mode: OpenSSL::SSL::VERIFY_PEER)
      ctx
    end
  end
end
