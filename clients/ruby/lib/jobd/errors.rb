module Jobd
  # Base of every error this gem raises.
  class Error < StandardError; end

  # The request did not get an answer: connect refused, timeout, connection
  # closed mid-answer. Whether jobd stored a submission is unknown, so resend
  # it with the same `id` (jobd answers a replay with the existing job).
  class ConnectionError < Error; end

  # jobd answered with an error: `{"error": {"code", "message", "field", "index"}}`.
  class APIError < Error
    # HTTP status (Integer), jobd's error code ("invalid_job", ...), the field
    # it names (or nil), the index of the job in a batch (or nil), the
    # Retry-After seconds of the answer (or nil) and how many requests were
    # made in all (more than 1 after 503 retries).
    attr_reader :status, :code, :field, :index, :retry_after, :attempts

    def initialize(status:, code:, message:, field: nil, index: nil, retry_after: nil, attempts: 1)
      @status = status
      @code = code
      @field = field
      @index = index
      @retry_after = retry_after
      @attempts = attempts
      super(message)
    end
  end

  # A 4xx: the request itself is wrong (never retried).
  class ClientError < APIError; end
  # 404 unknown_queue / unknown_job / not_found.
  class NotFound < ClientError; end
  # 409: e.g. cancelling a job that is already running or finished.
  class Conflict < ClientError; end
  # 422 invalid_job / batch_too_large: `field` and, in a batch, `index` say what is wrong.
  class InvalidJob < ClientError; end
  # 401: API token missing or wrong.
  class Unauthorized < ClientError; end
  # A 5xx other than 503.
  class ServerError < APIError; end
  # 503 after the configured retries: the job was NOT accepted.
  class Unavailable < ServerError; end

  # The class an error answer maps to.
  def self.error_class_for(status)
    case status
    when 401 then Unauthorized
    when 404 then NotFound
    when 409 then Conflict
    when 422 then InvalidJob
    when 503 then Unavailable
    when 400..499 then ClientError
    else ServerError
    end
  end
end
