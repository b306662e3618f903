require "active_job"
require "jobd"
require "jobd/client"
require "jobd/buffer"

module Jobd
  # `jobd_options` for job classes: jobd's own per-job settings.
  #
  #   class ReportJob < ApplicationJob
  #     jobd_options max_attempts: 1, timeout: 300
  #   end
  module JobOptions
    # max_attempts: jobd's attempts for each enqueue of this job (1 when
    # ActiveJob's retry_on should own the retries). timeout: seconds jobd
    # waits for the webhook. type: the jobd job type (handler) to use.
    def jobd_options(max_attempts: nil, timeout: nil, type: nil)
      self.jobd_job_options = { max_attempts: max_attempts, timeout: timeout, type: type }.compact.freeze
    end
  end

  ActiveSupport.on_load(:active_job) do
    class_attribute :jobd_job_options, instance_accessor: false, default: {}.freeze
    extend Jobd::JobOptions
  end
end

module ActiveJob
  module QueueAdapters
    # `config.active_job.queue_adapter = :jobd` (or per job class
    # `self.queue_adapter = :jobd`). Each enqueue is one POST to jobd's queue
    # named by `queue_as`, type "active_job", args = job.serialize, id = the
    # job's job_id (so resending after a network error is idempotent).
    #
    # A job re-enqueued by ActiveJob's retry_on keeps its job_id; its jobd id is
    # then "<job_id>.<executions>", a new jobd job for each ActiveJob retry.
    class JobdAdapter
      ID_PATTERN = /\A[A-Za-z0-9._:-]{1,128}\z/.freeze

      # With no arguments the settings come from Jobd.config (config.jobd in
      # Rails) when the first job is enqueued. `client:` replaces the client;
      # the other keywords override Jobd.config's fields of the same names.
      def initialize(client: nil, **overrides)
        unknown = overrides.keys - %i[url token type timeout retries buffered max_buffer max_batch flush_timeout logger]
        raise ArgumentError, "unknown option(s) #{unknown.join(', ')}" unless unknown.empty?

        @client = client
        @overrides = overrides
        @lock = Mutex.new
      end

      def enqueue(job)
        submit(job, nil)
      end

      def enqueue_at(job, timestamp)
        submit(job, timestamp)
      end

      # ActiveJob.perform_all_later (Rails 7.1+): one enqueue_batch request per
      # queue and 1,000 jobs, each batch all or nothing (an error is raised and
      # the jobs of earlier batches stay enqueued). Returns the number enqueued.
      def enqueue_all(jobs)
        client = setup.first
        jobs.group_by(&:queue_name).sum do |queue, group|
          group.each_slice(1000).sum do |slice|
            views = client.enqueue_batch(queue, slice.map { |job| payload(job, job.scheduled_at) })
            slice.zip(views).each do |job, view|
              job.provider_job_id = view["id"]
              job.successfully_enqueued = true if job.respond_to?(:successfully_enqueued=)
            end
            slice.size
          end
        end
      end

      # The Jobd::Client this adapter submits with.
      def client
        @client || setup.first
      end

      # The Jobd::Buffer of the buffered mode, or nil.
      def buffer
        setup.last
      end

      private

      def config
        @config ||= begin
          base = Jobd.config
          c = base.dup
          @overrides.each { |key, value| c.public_send("#{key}=", value) }
          c
        end
      end

      # [client, buffer or nil], built on first use.
      def setup
        @setup || @lock.synchronize do
          @setup ||= begin
            client = @client || Jobd::Client.new(**config.client_options)
            buffer = config.buffered ? Jobd::Buffer.new(client, **config.buffer_options) : nil
            [client, buffer]
          end
        end
      end

      def submit(job, timestamp)
        client, buffer = setup
        payload = payload(job, timestamp)
        if buffer && payload["id"] && buffer.push(job.queue_name, payload)
          job.provider_job_id = payload["id"] # jobd keeps the id it is given
          return job
        end

        view = client.enqueue(job.queue_name, payload["type"], payload["args"],
                              id: payload["id"], scheduled_at: payload["scheduled_at"],
                              max_attempts: payload["max_attempts"], timeout: payload["timeout"])
        job.provider_job_id = view["id"]
        job
      end

      # The jobd job (a Hash for Client#enqueue_batch) that carries `job`.
      def payload(job, timestamp)
        options = job.class.respond_to?(:jobd_job_options) ? job.class.jobd_job_options : {}
        executions = job.executions.to_i
        id = executions.positive? ? "#{job.job_id}.#{executions}" : job.job_id.to_s
        {
          "type" => options[:type] || config.resolved_type,
          "args" => job.serialize,
          "id" => ID_PATTERN.match?(id) ? id : nil,
          "scheduled_at" => timestamp && Jobd::Client.time_text(timestamp),
          "max_attempts" => options[:max_attempts],
          "timeout" => options[:timeout]
        }.compact
      end
    end
  end
end
