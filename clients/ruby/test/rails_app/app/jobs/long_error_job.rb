class LongErrorJob < ApplicationJob
  class Long < StandardError; end

  def perform(size)
    raise Long, "é" * size
  end
end
