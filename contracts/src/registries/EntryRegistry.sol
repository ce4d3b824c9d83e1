// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice Receiver hook of ERC-721 safe transfers.
interface IERC721Receiver {
    function onERC721Received(address operator, address from, uint256 tokenId, bytes calldata data)
        external
        returns (bytes4);
}

/// @title EntryRegistry
/// @notice ERC-721 registry of PoCo entries (apps, datasets, workerpools). Each entry is named by
///         a deterministic address derived from its creator's arguments, its token id is that
///         address, and whoever holds the token owns the entry (as in PoCo's registries).
abstract contract EntryRegistry {
    /// @notice ERC-721 transfer, also emitted with `from == 0` when an entry is created.
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
    /// @notice ERC-721 single-token approval.
    event Approval(address indexed owner, address indexed approved, uint256 indexed tokenId);
    /// @notice ERC-721 operator approval.
    event ApprovalForAll(address indexed owner, address indexed operator, bool approved);

    error EntryAlreadyRegistered(address entry);
    error EntryNotRegistered(address entry);
    error NotEntryOwner(address entry, address caller);
    error NotAuthorized(address caller, uint256 tokenId);
    error InvalidRecipient(address to);
    error WrongFrom(address from, address owner);
    error InvalidOwner(address owner);

    string private _name;
    string private _symbol;
    mapping(uint256 tokenId => address) private _owners;
    mapping(address owner => uint256) private _balances;
    mapping(uint256 tokenId => address) private _tokenApprovals;
    mapping(address owner => mapping(address operator => bool)) private _operatorApprovals;

    constructor(string memory name_, string memory symbol_) {
        _name = name_;
        _symbol = symbol_;
    }

    /// @notice ERC-721 collection name.
    function name() external view returns (string memory) {
        return _name;
    }

    /// @notice ERC-721 collection symbol.
    function symbol() external view returns (string memory) {
        return _symbol;
    }

    /// @notice True when `entry` was created by this registry.
    function isRegistered(address entry) public view returns (bool) {
        return _owners[uint256(uint160(entry))] != address(0);
    }

    /// @notice Owner of an entry, by its address.
    function ownerOfEntry(address entry) public view returns (address) {
        return ownerOf(uint256(uint160(entry)));
    }

    /// @notice ERC-721 owner of a token; reverts for unknown tokens.
    function ownerOf(uint256 tokenId) public view returns (address) {
        address owner = _owners[tokenId];
        if (owner == address(0)) revert EntryNotRegistered(address(uint160(tokenId)));
        return owner;
    }

    /// @notice ERC-721 number of entries owned by `owner`.
    function balanceOf(address owner) external view returns (uint256) {
        if (owner == address(0)) revert InvalidOwner(owner);
        return _balances[owner];
    }

    /// @notice ERC-721 approved address of a token.
    function getApproved(uint256 tokenId) external view returns (address) {
        ownerOf(tokenId);
        return _tokenApprovals[tokenId];
    }

    /// @notice ERC-721 operator approval query.
    function isApprovedForAll(address owner, address operator) public view returns (bool) {
        return _operatorApprovals[owner][operator];
    }

    /// @notice ERC-721 approve one address for one token.
    function approve(address to, uint256 tokenId) external {
        address owner = ownerOf(tokenId);
        if (msg.sender != owner && !isApprovedForAll(owner, msg.sender)) revert NotAuthorized(msg.sender, tokenId);
        _tokenApprovals[tokenId] = to;
        emit Approval(owner, to, tokenId);
    }

    /// @notice ERC-721 operator approval.
    function setApprovalForAll(address operator, bool approved) external {
        _operatorApprovals[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    /// @notice ERC-721 transfer; moves ownership of the entry.
    function transferFrom(address from, address to, uint256 tokenId) public {
        address owner = ownerOf(tokenId);
        if (owner != from) revert WrongFrom(from, owner);
        if (to == address(0)) revert InvalidRecipient(to);
        if (msg.sender != owner && !isApprovedForAll(owner, msg.sender) && _tokenApprovals[tokenId] != msg.sender) {
            revert NotAuthorized(msg.sender, tokenId);
        }
        delete _tokenApprovals[tokenId];
        unchecked {
            _balances[from] -= 1;
            _balances[to] += 1;
        }
        _owners[tokenId] = to;
        emit Transfer(from, to, tokenId);
    }

    /// @notice ERC-721 safe transfer without data.
    function safeTransferFrom(address from, address to, uint256 tokenId) external {
        safeTransferFrom(from, to, tokenId, "");
    }

    /// @notice ERC-721 safe transfer: a contract recipient must accept the token.
    function safeTransferFrom(address from, address to, uint256 tokenId, bytes memory data) public {
        transferFrom(from, to, tokenId);
        _checkReceiver(from, to, tokenId, data);
    }

    /// @notice ERC-165: ERC-165, ERC-721 and ERC-721 metadata (name, symbol).
    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == 0x01ffc9a7 || interfaceId == 0x80ac58cd || interfaceId == 0x5b5e139f;
    }

    /// @notice ERC-721 metadata URI: entries keep their metadata on chain, so none.
    function tokenURI(uint256 tokenId) external view returns (string memory) {
        ownerOf(tokenId);
        return "";
    }

    /// @dev Mints the token of a new entry whose address is derived from `salt`.
    function _register(address owner, bytes32 salt) internal returns (address entry) {
        if (owner == address(0)) revert InvalidOwner(owner);
        entry = address(uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), owner, salt)))));
        uint256 tokenId = uint256(uint160(entry));
        if (_owners[tokenId] != address(0)) revert EntryAlreadyRegistered(entry);
        _owners[tokenId] = owner;
        unchecked {
            _balances[owner] += 1;
        }
        emit Transfer(address(0), owner, tokenId);
    }

    /// @dev Reverts unless the caller owns `entry`.
    function _onlyEntryOwner(address entry) internal view {
        if (ownerOfEntry(entry) != msg.sender) revert NotEntryOwner(entry, msg.sender);
    }

    function _checkReceiver(address from, address to, uint256 tokenId, bytes memory data) private {
        if (to.code.length == 0) return;
        try IERC721Receiver(to).onERC721Received(msg.sender, from, tokenId, data) returns (bytes4 ret) {
            if (ret != IERC721Receiver.onERC721Received.selector) revert InvalidRecipient(to);
        } catch {
            revert InvalidRecipient(to);
        }
    }
}
