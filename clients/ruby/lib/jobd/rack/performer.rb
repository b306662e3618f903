require "json"
require "openssl"

module Jobd
  module Rack
    # The Rack endpoint jobd's webhook handler calls to perform a job:
    #
    #   mount Jobd::Rack::Performer.new(secret: ENV.fetch("JOBD_WEBHOOK_SECRET")) => "/jobd/perform"
    #
    # It answers 401 to a request whose Jobd-Signature is missing or wrong, or
    # whose timestamp is more than `max_age` seconds (5 minutes) away from now,
    # before the job is parsed or run. Otherwise it runs the job
    # (ActiveJob::Base.execute of the webhook's "args", with provider_job_id set
    # to jobd's id) and answers 204, or 500 with "ExceptionClass: message" (at
    # most 1 KiB) on an unhandled exception, which jobd retries with its backoff
    # until the job's max_attempts, then keeps in the dead set.
    class Performer
      MAX_ERROR_BYTES = 1024

      # secret: the webhook handler's secret (required). max_age: seconds a
      # signature stays valid. max_body: largest body read, in bytes (413
      # beyond). executor: callable given the parsed webhook body (default:
      # run it with ActiveJob). logger: where failures are logged (default:
      # Rails.logger in Rails, else none).
      def initialize(secret:, max_age: 300, max_body: 64 * 1024 * 1024, executor: nil, logger: nil)
        raise ArgumentError, "Jobd::Rack::Performer needs a non-empty secret" if secret.nil? || secret.to_s.empty?

        @secret = secret.to_s
        @max_age = max_age
        @max_body = max_body
        @active_job = executor.nil?
        @executor = executor || method(:execute_active_job)
        @logger = logger
      end

      def call(env)
        return answer(405, "only POST", "allow" => "POST") unless env["REQUEST_METHOD"] == "POST"

        stamp, signatures = parse_signature(env["HTTP_JOBD_SIGNATURE"])
        return answer(401, "missing or malformed Jobd-Signature") unless stamp
        return answer(401, "Jobd-Signature timestamp too old or in the future") if (Time.now.to_i - stamp).abs > @max_age

        body = read_body(env["rack.input"])
        return answer(413, "body larger than #{@max_body} bytes") unless body

        expected = OpenSSL::HMAC.hexdigest("SHA256", @secret, "#{stamp}.#{body}")
        return answer(401, "wrong Jobd-Signature") unless signatures.any? { |sig| OpenSSL.secure_compare(expected, sig) }

        payload = parse_payload(body)
        # A 4xx makes jobd mark the job dead at once: retrying cannot fix its body.
        return answer(422, "webhook body has no ActiveJob payload in \"args\"") unless payload

        perform(payload)
      end

      private

      def perform(payload)
        @executor.call(payload)
        [204, {}, []]
      rescue StandardError => e
        text = "#{e.class}: #{e.message}"
        text = text.byteslice(0, MAX_ERROR_BYTES).scrub("")
        logger&.error("jobd: job #{payload['id']} attempt failed: #{text}")
        answer(500, text)
      end

      def execute_active_job(payload)
        data = payload["args"]
        data = data.merge("provider_job_id" => payload["id"]) if payload["id"]
        ::ActiveJob::Base.execute(data)
      end

      # [timestamp Integer, [v1 signatures]] or nil.
      def parse_signature(header)
        return nil unless header.is_a?(String)

        stamp = nil
        signatures = []
        header.split(",").each do |pair|
          key, value = pair.strip.split("=", 2)
          next unless value

          stamp = Integer(value, 10) if key == "t" && value.match?(/\A\d{1,12}\z/)
          signatures << value if key == "v1"
        end
        stamp && !signatures.empty? ? [stamp, signatures] : nil
      end

      def read_body(input)
        return "" unless input

        body = input.read(@max_body + 1) || ""
        body.bytesize > @max_body ? nil : body
      end

      def parse_payload(body)
        payload = JSON.parse(body)
        return nil unless payload.is_a?(Hash)
        return payload unless @active_job

        payload["args"].is_a?(Hash) && payload["args"]["job_class"].is_a?(String) ? payload : nil
      rescue JSON::ParserError
        nil
      end

      def logger
        @logger ||= defined?(::Rails) && ::Rails.respond_to?(:logger) ? ::Rails.logger : nil
      end

      def answer(status, text, headers = {})
        [status, { "content-type" => "text/plain; charset=utf-8" }.merge(headers), [text]]
      end
    end
  end
end
