require "jobd/version"
require "jobd/errors"

# Client, ActiveJob adapter and webhook performer for the jobd job server.
#   Jobd::Client                        - HTTP client (lib/jobd/client.rb)
#   Jobd::Buffer                        - background batching for the opt-in buffered mode
#   ActiveJob::QueueAdapters::JobdAdapter - require "jobd/active_job" (done for you in Rails)
#   Jobd::Rack::Performer               - Rack endpoint that jobd's webhook calls
module Jobd
  autoload :Client, "jobd/client"
  autoload :Connection, "jobd/connection"
  autoload :Buffer, "jobd/buffer"

  module Rack
    autoload :Performer, "jobd/rack/performer"
  end

  # Settings of the ActiveJob adapter. Each one left nil falls back to the
  # environment (JOBD_URL, JOBD_API_TOKEN) or the default shown.
  class Config
    # url: jobd's base URL (JOBD_URL, else http://127.0.0.1:8080)
    # token: bearer token (JOBD_API_TOKEN, else none)
    # type: the jobd job type the adapter submits ("active_job"), i.e. the handler jobd calls
    # timeout, retries: passed to Jobd::Client
    # buffered: true = perform_later returns before jobd has the job (see Jobd::Buffer)
    # max_buffer, max_batch, flush_timeout: passed to Jobd::Buffer
    # logger: where the adapter reports what it could not hand to jobd
    attr_accessor :url, :token, :type, :timeout, :retries, :buffered,
                  :max_buffer, :max_batch, :flush_timeout, :logger

    def resolved_url
      url || ENV["JOBD_URL"] || "http://127.0.0.1:8080"
    end

    def resolved_token
      token || ENV["JOBD_API_TOKEN"]
    end

    def resolved_type
      type || "active_job"
    end

    # Options for Jobd::Client.new.
    def client_options
      { url: resolved_url, token: resolved_token, timeout: timeout || 5, retries: retries || 3 }
    end

    # Options for Jobd::Buffer.new.
    def buffer_options
      { max_buffer: max_buffer, max_batch: max_batch, flush_timeout: flush_timeout, logger: logger }.compact
    end
  end

  # The process's adapter settings (one object, read when the adapter first enqueues).
  def self.config
    @config ||= Config.new
  end

  # Jobd.configure { |c| c.url = "http://jobd:8080" }
  def self.configure
    yield config
  end
end

require "jobd/railtie" if defined?(::Rails::Railtie)
