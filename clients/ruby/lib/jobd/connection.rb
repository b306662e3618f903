require "socket"
require "io/wait"
require "openssl"
require "jobd/errors"

module Jobd
  # One persistent HTTP/1.1 connection to jobd. Not thread-safe: the client's
  # pool lends it to one thread at a time.
  #
  # Written on plain sockets rather than Net::HTTP because per-request work is
  # what limits a single Rails thread's enqueue rate (Net::HTTP's header objects,
  # its buffered reader and its per-request allocations cost about half the time
  # of a whole submission). Supports what jobd and proxies in front of it send:
  # Content-Length and chunked bodies, 1xx interim answers, `Connection: close`.
  class Connection
    # A failure on a connection that had already served a request, before any
    # byte of the answer: the server most likely closed it while it sat idle.
    class Stale < ConnectionError; end
    # No answer by the request's deadline.
    class Timeout < ConnectionError; end

    Response = Struct.new(:status, :headers, :body)

    READ_CHUNK = 16_384

    # Connects at once (raises ConnectionError). `ssl_context`: an
    # OpenSSL::SSL::SSLContext for https (nil = plain TCP).
    def initialize(host, port, connect_timeout:, ssl_context: nil)
      @buf = "".b
      @served = 0
      @last_used = now
      @sock = open_socket(host, port, connect_timeout, ssl_context)
    end

    # True while the connection may be lent again: open, and idle for less than
    # `idle_timeout` seconds (a server closes idle connections; jobd after 30 s).
    def reusable?(idle_timeout)
      !@sock.nil? && now - @last_used < idle_timeout
    end

    # Sends `request` (the complete request bytes) and returns its Response,
    # reading until `deadline` (a CLOCK_MONOTONIC time). Raises Stale (see above)
    # or ConnectionError; on any error the connection is closed.
    def request(request, deadline)
      reused = @served.positive?
      @answered = false
      begin
        write_all(request, deadline)
        res = read_response(deadline)
      rescue SystemCallError, IOError, OpenSSL::SSL::SSLError, ArgumentError, ConnectionError => e
        close
        # A reused connection that failed before any byte of the answer was
        # most likely closed by the server while idle: the caller may resend.
        raise Stale, "connection closed by the server: #{e.message}" if reused && !@answered && !e.is_a?(Timeout)
        raise e if e.is_a?(ConnectionError)
        raise ConnectionError, "#{e.class}: #{e.message}"
      end
      @served += 1
      @last_used = now
      res
    end

    def close
      @sock&.close
    rescue IOError, SystemCallError
      nil
    ensure
      @sock = nil
    end

    private

    def now
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    def open_socket(host, port, connect_timeout, ssl_context)
      sock = Socket.tcp(host, port, connect_timeout: connect_timeout)
      sock.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
      return sock unless ssl_context

      ssl = OpenSSL::SSL::SSLSocket.new(sock, ssl_context)
      ssl.hostname = host
      ssl.sync_close = true
      deadline = now + connect_timeout
      loop do
        case ssl.connect_nonblock(exception: false)
        when :wait_readable then wait(sock, :read, deadline)
        when :wait_writable then wait(sock, :write, deadline)
        else break
        end
      end
      ssl.post_connection_check(host) if ssl_context.verify_mode != OpenSSL::SSL::VERIFY_NONE
      ssl
    rescue SystemCallError, SocketError, IOError => e
      sock&.close
      raise ConnectionError, "cannot connect to #{host}:#{port}: #{e.message}"
    rescue StandardError => e
      sock&.close
      raise ConnectionError, "TLS handshake with #{host}:#{port} failed: #{e.message}"
    end

    def io
      @sock.respond_to?(:to_io) ? @sock.to_io : @sock
    end

    def wait(raw, direction, deadline)
      left = deadline - now
      ready = left.positive? && (direction == :read ? raw.wait_readable(left) : raw.wait_writable(left))
      raise Timeout, "timed out after waiting for jobd" unless ready
    end

    def write_all(data, deadline)
      until data.empty?
        n = @sock.write_nonblock(data, exception: false)
        case n
        when :wait_writable then wait(io, :write, deadline)
        when :wait_readable then wait(io, :read, deadline)
        else data = data.byteslice(n, data.bytesize - n)
        end
      end
    end

    # Appends what the socket has to @buf; raises EOFError at end of stream.
    def fill(deadline)
      loop do
        chunk = @sock.read_nonblock(READ_CHUNK, exception: false)
        case chunk
        when :wait_readable then wait(io, :read, deadline)
        when :wait_writable then wait(io, :write, deadline)
        when nil then raise EOFError, "end of stream"
        else
          @answered = true
          @buf << chunk
          return
        end
      end
    end

    def take(n)
      out = @buf.byteslice(0, n)
      @buf = @buf.byteslice(n, @buf.bytesize - n)
      out
    end

    def read_line(deadline)
      fill(deadline) until (i = @buf.index("\r\n"))
      line = take(i)
      take(2)
      line
    end

    def read_exact(n, deadline)
      fill(deadline) while @buf.bytesize < n
      take(n)
    end

    def read_response(deadline)
      loop do
        fill(deadline) until (head_end = @buf.index("\r\n\r\n"))
        head = take(head_end)
        take(4)
        lines = head.split("\r\n")
        m = %r{\AHTTP/1\.([01]) (\d{3})}.match(lines.shift.to_s)
        raise ConnectionError, "malformed HTTP answer from jobd" unless m

        status = m[2].to_i
        next if status >= 100 && status < 200 # interim answer: the real one follows

        headers = {}
        lines.each do |line|
          name, value = line.split(":", 2)
          headers[name.strip.downcase] = value.to_s.strip if value
        end
        body = read_body(status, headers, deadline)
        close if m[1] == "0" || headers["connection"].to_s.casecmp?("close")
        return Response.new(status, headers, body.force_encoding(Encoding::UTF_8))
      end
    end

    def read_body(status, headers, deadline)
      return "".b if status == 204 || status == 304
      return read_chunked(deadline) if headers["transfer-encoding"].to_s.downcase.include?("chunked")
      return read_exact(Integer(headers["content-length"], 10), deadline) if headers["content-length"]

      # No length: the body runs to the end of the stream.
      begin
        loop { fill(deadline) }
      rescue EOFError
        nil
      end
      close
      take(@buf.bytesize)
    end

    def read_chunked(deadline)
      body = "".b
      loop do
        size = Integer(read_line(deadline).split(";", 2).first.strip, 16)
        if size.zero?
          nil until read_line(deadline).empty? # trailers end with an empty line
          return body
        end
        body << read_exact(size, deadline)
        read_line(deadline)
      end
    end
  end
end
