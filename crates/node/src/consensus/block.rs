//! The block as consensus sees it: a state-machine [`Block`] whose consensus
//! digest *is* the block hash, carried over the wire as its bounded borsh
//! encoding inside commonware's codec.

use super::Digest;
use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error, RangeCfg, Read, Write};
use commonware_consensus::{BoundedBlock, Heightable, types::Height};
use commonware_cryptography::Digestible;
use phalanx_state::Block;
use phalanx_state::block::BLOCK_BYTES_MAX;
use std::sync::Arc;

/// A block in consensus. Cloning shares the block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusBlock(pub Arc<Block>);

pub use phalanx_light::certificate::{from_digest, to_digest};

impl Write for ConsensusBlock {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.encode().write(buf);
    }
}

impl EncodeSize for ConsensusBlock {
    fn encode_size(&self) -> usize {
        self.0.encode().encode_size()
    }
}

impl Read for ConsensusBlock {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        let bytes = Vec::<u8>::read_cfg(buf, &(RangeCfg::from(..=BLOCK_BYTES_MAX), ()))?;
        let block = Block::decode(&bytes).map_err(|_| Error::Invalid("phalanx block", "malformed borsh encoding"))?;
        Ok(ConsensusBlock(Arc::new(block)))
    }
}

impl Digestible for ConsensusBlock {
    type Digest = Digest;

    fn digest(&self) -> Digest {
        to_digest(self.0.hash())
    }
}

impl Heightable for ConsensusBlock {
    fn height(&self) -> Height {
        Height::new(self.0.header.height)
    }
}

impl commonware_consensus::Block for ConsensusBlock {
    fn parent(&self) -> Digest {
        to_digest(self.0.header.parent)
    }
}

impl BoundedBlock for ConsensusBlock {
    fn max_encode_size(_: &()) -> usize {
        // Length prefix (a varint of at most 5 bytes) plus the bytes.
        BLOCK_BYTES_MAX + 5
    }
}
